package members

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

// cluster builds an Input: n members mqb-0..mqb-(n-1), all running and
// current, with mqb-<leader> leading term 7 and every follower caught up.
func cluster(n, leader int) Input {
	in := Input{StatefulSet: "mqb", Replicas: n, Views: map[string]View{}, Now: now, Limits: DefaultLimits}
	var cfg []Member
	for i := range n {
		name := fmt.Sprintf("mqb-%d", i)
		in.Pods = append(in.Pods, Pod{Name: name, Ordinal: i, Running: true, Current: true, Created: now.Add(-time.Hour)})
		cfg = append(cfg, Member{ID: name, Voter: true, Lag: ptr(uint64(0)), LastContact: ptr(10 * time.Millisecond)})
	}
	for i := range n {
		name := fmt.Sprintf("mqb-%d", i)
		v := View{Role: "follower", Term: 7, LeaderID: fmt.Sprintf("mqb-%d", leader), Members: cfg}
		if i == leader {
			v.Role, v.Serving = "leader", true
		}
		in.Views[name] = v
	}
	return in
}

func ptr[T any](v T) *T { return &v }

// leaderMember edits the leader's view of one member.
func leaderMember(in Input, id string, edit func(*Member)) {
	for name, v := range in.Views {
		if v.Role != "leader" {
			continue
		}
		ms := append([]Member(nil), v.Members...)
		for i := range ms {
			if ms[i].ID == id {
				edit(&ms[i])
			}
		}
		v.Members = ms
		in.Views[name] = v
	}
}

func pod(in *Input, name string) *Pod {
	for i := range in.Pods {
		if in.Pods[i].Name == name {
			return &in.Pods[i]
		}
	}
	panic(name)
}

func outdated(in *Input, names ...string) {
	for _, n := range names {
		pod(in, n).Current = false
	}
}

func TestDecide(t *testing.T) {
	tests := map[string]struct {
		in     func() Input
		kind   Kind
		member string
		reason string // a part of the reason, if checked
	}{
		"settled": {in: func() Input { return cluster(3, 0) }, kind: Done},
		"no leader": {in: func() Input {
			in := cluster(3, 0)
			v := in.Views["mqb-0"]
			v.Serving = false
			in.Views["mqb-0"] = v
			return in
		}, kind: Wait, reason: "no member reports a leader"},
		"leader not answering": {in: func() Input {
			in := cluster(3, 1)
			delete(in.Views, "mqb-1")
			outdated(&in, "mqb-0", "mqb-1", "mqb-2")
			return in
		}, kind: Wait},
		"a terminating leader is no leader": {in: func() Input {
			in := cluster(3, 1)
			pod(&in, "mqb-1").Deleting = true
			return in
		}, kind: Wait, reason: "no member reports a leader"},
		"roll: highest follower first": {in: func() Input {
			in := cluster(3, 0)
			outdated(&in, "mqb-0", "mqb-1", "mqb-2")
			return in
		}, kind: DeletePod, member: "mqb-2"},
		"roll: the leader is last, after a transfer": {in: func() Input {
			in := cluster(3, 2)
			outdated(&in, "mqb-2")
			return in
		}, kind: PrepareHandover, member: "mqb-2"},
		"roll: after the transfer the old leader is a follower and goes": {in: func() Input {
			in := cluster(3, 0)
			outdated(&in, "mqb-2")
			return in
		}, kind: DeletePod, member: "mqb-2"},
		"roll: waits for a deleted member to come back": {in: func() Input {
			in := cluster(3, 0)
			outdated(&in, "mqb-0", "mqb-1")
			in.Pods = in.Pods[:2] // mqb-2 deleted, not recreated yet
			return in
		}, kind: Wait, member: "mqb-2"},
		"roll: stalls when a deleted member's pod is not back in time": {in: func() Input {
			in := cluster(3, 0)
			outdated(&in, "mqb-0", "mqb-1")
			in.Pods = in.Pods[:2]
			in.Rolled = map[string]time.Time{"mqb-2": now.Add(-DefaultLimits.ComeBack - time.Second)}
			return in
		}, kind: Stalled, member: "mqb-2", reason: "has not come back"},
		"roll: a deleted member's pod within its bound is waited for": {in: func() Input {
			in := cluster(3, 0)
			outdated(&in, "mqb-0", "mqb-1")
			in.Pods = in.Pods[:2]
			in.Rolled = map[string]time.Time{"mqb-2": now.Add(-time.Minute)}
			return in
		}, kind: Wait, member: "mqb-2"},
		"roll: waits for a terminating member": {in: func() Input {
			in := cluster(3, 0)
			outdated(&in, "mqb-0", "mqb-1", "mqb-2")
			pod(&in, "mqb-2").Deleting = true
			return in
		}, kind: Wait, member: "mqb-2"},
		"roll: waits for a restarted member to catch up": {in: func() Input {
			in := cluster(3, 0)
			outdated(&in, "mqb-0", "mqb-1")
			pod(&in, "mqb-2").Created = now.Add(-time.Minute)
			leaderMember(in, "mqb-2", func(m *Member) { m.Lag = ptr(uint64(5000)) })
			return in
		}, kind: Wait, member: "mqb-2", reason: "catch up"},
		"roll: a member that never hears back is not caught up": {in: func() Input {
			in := cluster(3, 0)
			outdated(&in, "mqb-0", "mqb-1")
			pod(&in, "mqb-2").Created = now.Add(-time.Minute)
			leaderMember(in, "mqb-2", func(m *Member) { m.Lag = nil })
			return in
		}, kind: Wait, member: "mqb-2"},
		"roll: stalls when a restarted member does not come back in time": {in: func() Input {
			in := cluster(3, 0)
			outdated(&in, "mqb-0", "mqb-1")
			pod(&in, "mqb-2").Created = now.Add(-DefaultLimits.ComeBack - time.Second)
			leaderMember(in, "mqb-2", func(m *Member) { m.LastContact = ptr(time.Minute) })
			return in
		}, kind: Stalled, member: "mqb-2", reason: "stops"},
		"no roll: a lagging current member is not a stall": {in: func() Input {
			in := cluster(3, 0)
			pod(&in, "mqb-2").Created = now.Add(-24 * time.Hour)
			leaderMember(in, "mqb-2", func(m *Member) { m.Lag = ptr(uint64(1 << 20)) })
			return in
		}, kind: Done},
		"roll: never below a quorum (3 members, one down)": {in: func() Input {
			in := cluster(3, 0)
			outdated(&in, "mqb-0", "mqb-1")
			pod(&in, "mqb-2").Running = false // current but down, within the bound
			pod(&in, "mqb-2").Created = now.Add(-time.Second)
			return in
		}, kind: Wait, member: "mqb-2"},
		"roll: an unhealthy outdated follower goes first, costing no healthy member": {in: func() Input {
			in := cluster(5, 0)
			outdated(&in, "mqb-0", "mqb-1", "mqb-2", "mqb-3", "mqb-4")
			leaderMember(in, "mqb-1", func(m *Member) { m.Lag = ptr(uint64(1 << 20)) })
			return in
		}, kind: DeletePod, member: "mqb-1"},
		"roll: 3 members with an outdated unhealthy follower and a healthy one: only the unhealthy may go": {in: func() Input {
			in := cluster(3, 0)
			outdated(&in, "mqb-1", "mqb-2")
			pod(&in, "mqb-1").Running = false
			return in
		}, kind: DeletePod, member: "mqb-1"},
		"roll: 5 members, two restarted ones catching up: a healthy follower waits": {in: func() Input {
			in := cluster(5, 0)
			outdated(&in, "mqb-4")
			for _, id := range []string{"mqb-1", "mqb-2"} {
				leaderMember(in, id, func(m *Member) { m.Lag = nil })
				pod(&in, id).Created = now.Add(-time.Minute)
			}
			return in
		}, kind: Wait, member: "mqb-1", reason: "catch up"},
		"roll: the leader does not hand over while a follower catches up": {in: func() Input {
			in := cluster(3, 0)
			outdated(&in, "mqb-0")
			leaderMember(in, "mqb-1", func(m *Member) { m.Lag = ptr(uint64(1 << 20)) })
			pod(&in, "mqb-1").Created = now.Add(-time.Minute)
			return in
		}, kind: Wait, member: "mqb-1"},
		"roll: outdated members that are down go first, highest first": {in: func() Input {
			in := cluster(5, 0)
			outdated(&in, "mqb-0", "mqb-3", "mqb-4")
			pod(&in, "mqb-3").Running = false
			pod(&in, "mqb-4").Running = false
			return in
		}, kind: DeletePod, member: "mqb-4"},
		"grow: a new pod joins through the leader": {in: func() Input {
			in := cluster(3, 1)
			in.Replicas = 5
			in.Pods = append(in.Pods, Pod{Name: "mqb-3", Ordinal: 3, Running: true, Current: true, Created: now},
				Pod{Name: "mqb-4", Ordinal: 4, Running: true, Current: true, Created: now})
			return in
		}, kind: AddMember, member: "mqb-3"},
		"grow: a non-voter is asked again": {in: func() Input {
			in := cluster(4, 1)
			in.Replicas = 5
			leaderMember(in, "mqb-3", func(m *Member) { m.Voter = false })
			in.Pods = append(in.Pods, Pod{Name: "mqb-4", Ordinal: 4, Running: true, Current: true, Created: now})
			return in
		}, kind: AddMember, member: "mqb-3"},
		"grow: waits for the new pod to run": {in: func() Input {
			in := cluster(3, 1)
			in.Replicas = 4
			in.Pods = append(in.Pods, Pod{Name: "mqb-3", Ordinal: 3, Created: now})
			return in
		}, kind: Wait, member: "mqb-3"},
		"shrink: highest member leaves first": {in: func() Input {
			in := cluster(5, 0)
			in.Replicas = 3
			return in
		}, kind: RemoveMember, member: "mqb-4"},
		"shrink: a member without a pod still leaves": {in: func() Input {
			in := cluster(5, 0)
			in.Replicas = 3
			in.Pods = in.Pods[:4]
			return in
		}, kind: RemoveMember, member: "mqb-4"},
		"shrink: a leaving leader hands over first": {in: func() Input {
			in := cluster(5, 4)
			in.Replicas = 3
			return in
		}, kind: TransferLeadership, member: "mqb-4"},
		"shrink: never below a quorum": {in: func() Input {
			in := cluster(5, 0)
			in.Replicas = 3
			for _, id := range []string{"mqb-1", "mqb-2"} {
				leaderMember(in, id, func(m *Member) { m.Lag = nil })
			}
			return in
		}, kind: Wait, member: "mqb-4", reason: "fewer than a quorum"},
		"shrink before roll": {in: func() Input {
			in := cluster(5, 0)
			in.Replicas = 3
			outdated(&in, "mqb-1")
			return in
		}, kind: RemoveMember, member: "mqb-4"},
		"a member added by hand is left alone": {in: func() Input {
			in := cluster(3, 0)
			leaderMember(in, "mqb-0", func(*Member) {})
			v := in.Views["mqb-0"]
			v.Members = append(append([]Member(nil), v.Members...), Member{ID: "elsewhere", Voter: false})
			in.Views["mqb-0"] = v
			return in
		}, kind: Done},
		"the highest term wins between two leaders": {in: func() Input {
			in := cluster(3, 0)
			v := in.Views["mqb-1"]
			v.Role, v.Serving, v.Term = "leader", true, 8
			in.Views["mqb-1"] = v
			outdated(&in, "mqb-2")
			return in
		}, kind: DeletePod, member: "mqb-2"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			a := Decide(tc.in())
			if a.Kind != tc.kind || (tc.member != "" && a.Member != tc.member) || !strings.Contains(a.Reason, tc.reason) {
				t.Errorf("Decide = %v %q (%s), want %v %q (reason containing %q)", a.Kind, a.Member, a.Reason, tc.kind, tc.member, tc.reason)
			}
		})
	}
}

// TestDecideNeverBreaksQuorum tries every combination of healthy and
// outdated members of 3 and 5 and checks that a deletion or a removal
// always leaves a quorum of caught-up voters.
func TestDecideNeverBreaksQuorum(t *testing.T) {
	for _, n := range []int{3, 5} {
		for mask := range 1 << (2 * n) {
			in := cluster(n, 0)
			for i := range n {
				name := fmt.Sprintf("mqb-%d", i)
				if mask&(1<<i) != 0 {
					pod(&in, name).Current = false
				}
				if mask&(1<<(n+i)) != 0 && i != 0 {
					leaderMember(in, name, func(m *Member) { m.Lag = nil })
				}
			}
			h := Assess(in)
			a := Decide(in)
			switch a.Kind {
			case DeletePod, RemoveMember:
				after := h.Healthy
				if h.IsHealthy(a.Member) {
					after--
				}
				if after < h.Quorum() {
					t.Fatalf("n=%d mask=%b: %v %s leaves %d healthy of quorum %d", n, mask, a.Kind, a.Member, after, h.Quorum())
				}
			case TransferLeadership, PrepareHandover:
				if h.Healthy-1 < h.Quorum() {
					t.Fatalf("n=%d mask=%b: %v with %d healthy", n, mask, a.Kind, h.Healthy)
				}
				if a.Kind == PrepareHandover && (!h.IsHealthy(a.To) || !pod(&in, a.To).Current || a.To == h.Leader) {
					t.Fatalf("n=%d mask=%b: handover to %q, not a caught-up current follower", n, mask, a.To)
				}
			}
		}
	}
}

func TestMembers(t *testing.T) {
	in := cluster(5, 0)
	in.Replicas = 3
	if got := Members(in, 5); got != 5 {
		t.Errorf("Members while mqb-3 and mqb-4 are in the configuration = %d, want 5", got)
	}
	in = cluster(4, 0)
	in.Replicas = 3
	if got := Members(in, 5); got != 4 {
		t.Errorf("Members once mqb-4 left = %d, want 4", got)
	}
	in = cluster(3, 0)
	if got := Members(in, 5); got != 3 {
		t.Errorf("Members once both left = %d, want 3", got)
	}
	delete(in.Views, "mqb-0")
	if got := Members(in, 5); got != 5 {
		t.Errorf("Members without a leader = %d, want the current 5 kept", got)
	}
	in = cluster(3, 0)
	v := in.Views["mqb-0"]
	v.Members = append(append([]Member(nil), v.Members...), Member{ID: "mqb-100000", Voter: true})
	in.Views["mqb-0"] = v
	if got := Members(in, 3); got != 3 {
		t.Errorf("Members with a hand-added mqb-100000 = %d, want 3 (bounded)", got)
	}
	if got := (Input{StatefulSet: "mqb"}).ordinal("mqb-01"); got != -1 {
		t.Errorf("ordinal(mqb-01) = %d, want -1", got)
	}
}
