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

// rolledFollower: mqb-0 leads with 10,000 entries committed, mqb-2 is
// outdated, and mqb-1 was rolled a second ago and has applied all but
// behind of them (mqb-2 all).
func rolledFollower(behind uint64) Input {
	in := cluster(3, 0)
	outdated(&in, "mqb-2")
	pod(&in, "mqb-1").Created = now.Add(-time.Second)
	const committed = 10_000
	for name, applied := range map[string]uint64{"mqb-0": committed, "mqb-1": committed - behind, "mqb-2": committed} {
		v := in.Views[name]
		v.CommitIndex, v.AppliedIndex = committed, applied
		in.Views[name] = v
	}
	return in
}

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

// cordon puts the pods on cordoned nodes (node-<pod>).
func cordon(in *Input, names ...string) {
	for _, n := range names {
		p := pod(in, n)
		p.Cordoned, p.Node = true, "node-"+n
	}
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
			// mqb-0 still says it leads term 7; mqb-1 leads term 8 and mqb-2
			// follows it: mqb-0 (now a follower in fact) is rolled.
			in := cluster(3, 0)
			v := in.Views["mqb-1"]
			v.Role, v.Serving, v.Term = "leader", true, 8
			in.Views["mqb-1"] = v
			v = in.Views["mqb-2"]
			v.Term, v.LeaderID = 8, "mqb-1"
			in.Views["mqb-2"] = v
			outdated(&in, "mqb-0")
			return in
		}, kind: DeletePod, member: "mqb-0"},
		// A follower just rolled: its new pod runs, but the leader still
		// reports the old process's contact and lag. Until the member
		// answers itself, following this leader with all but MaxLag
		// applied, it does not count, and the next follower waits.
		"a rolled follower not answering yet does not count": {in: func() Input {
			in := rolledFollower(0)
			delete(in.Views, "mqb-1")
			return in
		}, kind: Wait},
		"a rolled follower that has not heard from the leader does not count": {in: func() Input {
			in := rolledFollower(0)
			in.Views["mqb-1"] = View{Role: "follower", Term: 6}
			return in
		}, kind: Wait},
		"a rolled follower far behind in applying does not count": {in: func() Input {
			return rolledFollower(DefaultLimits.MaxLag + 1)
		}, kind: Wait},
		"a rolled follower within MaxLag counts": {in: func() Input {
			return rolledFollower(DefaultLimits.MaxLag)
		}, kind: DeletePod, member: "mqb-2"},
		"drain: a follower on a cordoned node moves": {in: func() Input {
			in := cluster(3, 0)
			cordon(&in, "mqb-1")
			return in
		}, kind: DeletePod, member: "mqb-1", reason: "moving follower mqb-1 off node node-mqb-1, which is cordoned"},
		"drain: an unhealthy follower on a cordoned node moves before a healthy one": {in: func() Input {
			in := cluster(3, 0)
			cordon(&in, "mqb-1", "mqb-2")
			leaderMember(in, "mqb-1", func(m *Member) { m.Lag = nil })
			return in
		}, kind: DeletePod, member: "mqb-1"},
		"drain: a member that does not catch up holds it": {in: func() Input {
			in := cluster(3, 0)
			cordon(&in, "mqb-1")
			leaderMember(in, "mqb-2", func(m *Member) { m.Lag = nil })
			return in
		}, kind: Stalled, member: "mqb-2"},
		"drain: waits for the moved member to come back": {in: func() Input {
			in := cluster(3, 0)
			cordon(&in, "mqb-1")
			in.Pods = in.Pods[:2] // mqb-2 moved, not recreated yet
			return in
		}, kind: Wait, member: "mqb-2"},
		"drain: the leader on a cordoned node hands over": {in: func() Input {
			in := cluster(3, 0)
			cordon(&in, "mqb-0")
			return in
		}, kind: PrepareHandover, member: "mqb-0"},
		"drain: the leader's successor is not on a cordoned node": {in: func() Input {
			in := cluster(5, 0)
			cordon(&in, "mqb-0", "mqb-1")
			leaderMember(in, "mqb-1", func(m *Member) { m.Lag = nil }) // mqb-1 goes first...
			pod(&in, "mqb-1").Deleting = true                          // ...and is on its way
			return in
		}, kind: Wait, member: "mqb-1"},
		"drain: nothing cordoned, nothing to do": {in: func() Input { return cluster(3, 1) }, kind: Done},
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
					// Outdated, or on a cordoned node (both must be
					// replaced), by the member's parity.
					if i%2 == 0 {
						pod(&in, name).Current = false
					} else {
						cordon(&in, name)
					}
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
				if a.Kind == PrepareHandover && (!h.IsHealthy(a.To) || pod(&in, a.To).due() || a.To == h.Leader) {
					t.Fatalf("n=%d mask=%b: handover to %q, not a caught-up current follower on a node not cordoned", n, mask, a.To)
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

// adopting is an Input while the single node mqb-0 becomes the first
// member of a cluster of n: mqb-0 runs the single node's template, no
// member answers, and the cluster's StatefulSet exists.
func adopting(n int) Input {
	return Input{StatefulSet: "mqb", Replicas: n, Views: map[string]View{}, Now: now, Limits: DefaultLimits,
		Adopting: true, MemberTemplate: true,
		Pods: []Pod{{Name: "mqb-0", Ordinal: 0, Running: true, Current: false, Single: true, Created: now.Add(-24 * time.Hour)}}}
}

// TestAdopt covers every case of a single node becoming member 0: the
// one restart, waiting, the stall, and the hand-over to the grow path.
func TestAdopt(t *testing.T) {
	cases := map[string]struct {
		edit   func(in *Input)
		kind   Kind
		member string
		reason string
	}{
		"single node restarts as member 0":            {func(in *Input) {}, DeletePod, "mqb-0", "adopts its store"},
		"not before the cluster's StatefulSet exists": {func(in *Input) { in.MemberTemplate = false }, Wait, "mqb-0", "replace the single node's"},
		"single node already deleting":                {func(in *Input) { in.Pods[0].Deleting = true }, Wait, "mqb-0", "restarts into cluster mode"},
		"pod gone":                                    {func(in *Input) { in.Pods = nil }, Wait, "mqb-0", "waiting for the pod of mqb-0"},
		"member pod on an outdated template": {func(in *Input) {
			in.Pods[0].Single, in.Pods[0].Created = false, now.Add(-time.Minute)
		}, DeletePod, "mqb-0", "adopts its store"},
		"member 0 starting": {func(in *Input) {
			in.Pods[0] = Pod{Name: "mqb-0", Ordinal: 0, Current: true, Created: now.Add(-time.Second)}
		}, Wait, "mqb-0", "waiting for mqb-0 to run"},
		"member 0 adopting and electing itself": {func(in *Input) {
			in.Pods[0] = Pod{Name: "mqb-0", Ordinal: 0, Running: true, Current: true, Created: now.Add(-time.Second)}
		}, Wait, "mqb-0", "elects itself"},
		"member 0 never leads": {func(in *Input) {
			in.Pods[0] = Pod{Name: "mqb-0", Ordinal: 0, Running: true, Current: true, Created: now.Add(-DefaultLimits.ComeBack - time.Second)}
		}, Stalled, "mqb-0", "does not lead within"},
		"a follower's view is no leader": {func(in *Input) {
			in.Pods[0] = Pod{Name: "mqb-0", Ordinal: 0, Running: true, Current: true, Created: now.Add(-time.Second)}
			in.Views["mqb-0"] = View{Role: "follower", Term: 1}
		}, Wait, "mqb-0", "elects itself"},
		"member 0 leads: formed": {func(in *Input) {
			in.Pods[0] = Pod{Name: "mqb-0", Ordinal: 0, Running: true, Current: true, Created: now.Add(-time.Second)}
			in.Views["mqb-0"] = View{Role: "leader", Serving: true, Term: 2, Members: []Member{{ID: "mqb-0", Voter: true}}}
		}, Done, "", "adopted the single node's store"},
		"leading but not serving yet": {func(in *Input) {
			in.Pods[0] = Pod{Name: "mqb-0", Ordinal: 0, Running: true, Current: true, Created: now.Add(-time.Second)}
			in.Views["mqb-0"] = View{Role: "leader", Term: 2, Members: []Member{{ID: "mqb-0", Voter: true}}}
		}, Wait, "mqb-0", "elects itself"},
	}
	for _, n := range []int{3, 5} {
		for name, tc := range cases {
			t.Run(fmt.Sprintf("%d/%s", n, name), func(t *testing.T) {
				in := adopting(n)
				tc.edit(&in)
				got := Decide(in)
				if got.Kind != tc.kind || got.Member != tc.member || !strings.Contains(got.Reason, tc.reason) {
					t.Fatalf("Decide = %v %q %q, want %v %q (reason with %q)", got.Kind, got.Member, got.Reason, tc.kind, tc.member, tc.reason)
				}
				if got.Kind == DeletePod && in.Pods[0].Name != "mqb-0" {
					t.Fatal("deleted another pod than member 0")
				}
			})
		}
	}
}

// TestAdoptThenGrow: once member 0 leads alone (no longer adopting), the
// grow path adds the others one at a time, lowest ordinal first, each a
// voter only once caught up.
func TestAdoptThenGrow(t *testing.T) {
	in := Input{StatefulSet: "mqb", Replicas: 3, Now: now, Limits: DefaultLimits, Views: map[string]View{
		"mqb-0": {Role: "leader", Serving: true, Term: 2, Members: []Member{{ID: "mqb-0", Voter: true}}},
	}}
	for i := range 3 {
		in.Pods = append(in.Pods, Pod{Name: fmt.Sprintf("mqb-%d", i), Ordinal: i, Running: true, Current: true, Created: now})
	}
	if got := Decide(in); got.Kind != AddMember || got.Member != "mqb-1" || got.Leader != "mqb-0" {
		t.Fatalf("Decide = %+v, want AddMember mqb-1 through mqb-0", got)
	}
	// mqb-1 added, still catching up (a non-voter): asked again.
	v := in.Views["mqb-0"]
	v.Members = append(v.Members, Member{ID: "mqb-1", Voter: false})
	in.Views["mqb-0"] = v
	if got := Decide(in); got.Kind != AddMember || got.Member != "mqb-1" {
		t.Fatalf("Decide = %+v, want AddMember mqb-1 again", got)
	}
	v.Members[1].Voter = true
	v.Members[1].Lag, v.Members[1].LastContact = ptr(uint64(0)), ptr(time.Millisecond)
	if got := Decide(in); got.Kind != AddMember || got.Member != "mqb-2" {
		t.Fatalf("Decide = %+v, want AddMember mqb-2", got)
	}
	// Adopting is over once a leader serves: Decide never restarts the
	// leader for it.
	in.Adopting = true
	if got := Decide(in); got.Kind != Done {
		t.Fatalf("Decide while still marked adopting with a leader = %+v, want Done", got)
	}
}
