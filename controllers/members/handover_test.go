package members

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// leaderTurn is a 3-member cluster led by mqb-2, the last to roll.
func leaderTurn() Input {
	in := cluster(3, 2)
	outdated(&in, "mqb-2")
	return in
}

func TestDecideHandover(t *testing.T) {
	limit := DefaultLimits.Handover
	tests := map[string]struct {
		in        func() Input
		kind      Kind
		to        string
		stepBack  bool
		reason    string
		standDown []string
	}{
		"prepares the lowest caught-up follower": {in: leaderTurn, kind: PrepareHandover, to: "mqb-0"},
		"prefers the least behind": {in: func() Input {
			in := leaderTurn()
			leaderMember(in, "mqb-0", func(m *Member) { m.Lag = ptr(uint64(40)) })
			leaderMember(in, "mqb-1", func(m *Member) { m.Lag = ptr(uint64(3)) })
			return in
		}, kind: PrepareHandover, to: "mqb-1"},
		"keeps the successor under way while it qualifies": {in: func() Input {
			in := leaderTurn()
			leaderMember(in, "mqb-0", func(m *Member) { m.Lag = ptr(uint64(1)) })
			in.Handover = &Handover{Successor: "mqb-1", Since: now.Add(-time.Second)}
			leaderMember(in, "mqb-1", func(m *Member) { m.Lag = ptr(uint64(9)) })
			return in
		}, kind: PrepareHandover, to: "mqb-1"},
		"drops a successor that no longer qualifies": {in: func() Input {
			in := leaderTurn()
			in.Handover = &Handover{Successor: "mqb-9", Since: now.Add(-time.Second)}
			return in
		}, kind: PrepareHandover, to: "mqb-0"},
		"still prepares while the Service lists the leader": {in: func() Input {
			in := leaderTurn()
			in.Endpoints = map[string]bool{"mqb-0": true, "mqb-2": true}
			in.Handover = &Handover{Successor: "mqb-0", Since: now.Add(-time.Second)}
			return in
		}, kind: PrepareHandover, to: "mqb-0", stepBack: true},
		"still prepares while the Service lacks the successor": {in: func() Input {
			in := leaderTurn()
			in.Endpoints = map[string]bool{"mqb-1": true}
			return in
		}, kind: PrepareHandover, to: "mqb-0", standDown: []string{"mqb-1"}},
		"unknown endpoints: prepares, never transfers": {in: func() Input {
			in := leaderTurn()
			in.Handover = &Handover{Successor: "mqb-0", Since: now.Add(-time.Second)}
			return in
		}, kind: PrepareHandover, to: "mqb-0"},
		"transfers once the Service routes to the successor": {in: func() Input {
			in := leaderTurn()
			in.Endpoints = map[string]bool{"mqb-0": true, "mqb-2": false}
			in.Handover = &Handover{Successor: "mqb-0", Since: now.Add(-time.Second)}
			return in
		}, kind: TransferLeadership, to: "mqb-0", reason: "now routes to mqb-0"},
		"no transfer while an earlier successor is still listed; it stands down": {in: func() Input {
			in := leaderTurn()
			in.Endpoints = map[string]bool{"mqb-0": true, "mqb-1": true, "mqb-2": false}
			in.Handover = &Handover{Successor: "mqb-0", Since: now.Add(-time.Second)}
			return in
		}, kind: PrepareHandover, to: "mqb-0", stepBack: true, standDown: []string{"mqb-1"}},
		"an earlier successor stands down while the leader is listed too": {in: func() Input {
			in := leaderTurn()
			in.Endpoints = map[string]bool{"mqb-1": true, "mqb-2": true}
			in.Handover = &Handover{Successor: "mqb-0", Since: now.Add(-time.Second)}
			return in
		}, kind: PrepareHandover, to: "mqb-0", standDown: []string{"mqb-1"}},
		"stalls when the Service does not follow in time": {in: func() Input {
			in := leaderTurn()
			in.Endpoints = map[string]bool{"mqb-2": true}
			in.Handover = &Handover{Successor: "mqb-0", Since: now.Add(-limit - time.Second)}
			return in
		}, kind: Stalled, to: "mqb-0", reason: "did not move"},
		"tries anew after the stall": {in: func() Input {
			in := leaderTurn()
			in.Handover = &Handover{Successor: "mqb-0", Since: now.Add(-2*limit - time.Second)}
			return in
		}, kind: PrepareHandover, to: "mqb-0"},
		"a zero limit means the default": {in: func() Input {
			in := leaderTurn()
			in.Limits.Handover = 0
			in.Handover = &Handover{Successor: "mqb-0", Since: now.Add(-limit + time.Second)}
			return in
		}, kind: PrepareHandover, to: "mqb-0"},
		"quorum first: no handover while a follower catches up": {in: func() Input {
			in := leaderTurn()
			pod(&in, "mqb-0").Created = now.Add(-time.Minute)
			leaderMember(in, "mqb-0", func(m *Member) { m.Lag = nil })
			return in
		}, kind: Wait, reason: "catch up"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			a := Decide(tc.in())
			if a.Kind != tc.kind || a.To != tc.to || a.StepBack != tc.stepBack || !strings.Contains(a.Reason, tc.reason) {
				t.Fatalf("got %v to %q step back %v (%s), want %v to %q step back %v (%q)", a.Kind, a.To, a.StepBack, a.Reason, tc.kind, tc.to, tc.stepBack, tc.reason)
			}
			if !slices.Equal(a.StandDown, tc.standDown) {
				t.Fatalf("stand down %v, want %v", a.StandDown, tc.standDown)
			}
		})
	}
}

// The reason of a handover's stall stays the same while it lasts: it is
// the Degraded message, and the Event is sent once.
func TestHandoverStallReasonIsStable(t *testing.T) {
	in := leaderTurn()
	in.Handover = &Handover{Successor: "mqb-0", Since: now.Add(-DefaultLimits.Handover - time.Second)}
	a := Decide(in)
	in.Now = in.Now.Add(DefaultLimits.Handover / 2)
	if b := Decide(in); a.Kind != Stalled || b.Reason != a.Reason {
		t.Fatalf("%v %q then %q", a.Kind, a.Reason, b.Reason)
	}
}

func TestHandoverRecord(t *testing.T) {
	limit := DefaultLimits.Handover
	under := &Handover{Successor: "mqb-0", Since: now.Add(-time.Second)}
	old := &Handover{Successor: "mqb-0", Since: now.Add(-2*limit - time.Second)}
	tests := map[string]struct {
		cur  *Handover
		act  Action
		want *Handover
	}{
		"a prepare starts one":              {act: Action{Kind: PrepareHandover, To: "mqb-0"}, want: &Handover{Successor: "mqb-0", Since: now}},
		"a prepare keeps the one under way": {cur: under, act: Action{Kind: PrepareHandover, To: "mqb-0"}, want: under},
		"a prepare for another successor restarts": {cur: under, act: Action{Kind: PrepareHandover, To: "mqb-1"},
			want: &Handover{Successor: "mqb-1", Since: now}},
		"a prepare after the stall restarts": {cur: old, act: Action{Kind: PrepareHandover, To: "mqb-0"}, want: &Handover{Successor: "mqb-0", Since: now}},
		"the transfer keeps it":              {cur: under, act: Action{Kind: TransferLeadership, To: "mqb-0"}, want: under},
		"the stall keeps it":                 {cur: under, act: Action{Kind: Stalled, To: "mqb-0"}, want: under},
		"another stall ends it":              {cur: under, act: Action{Kind: Stalled, Member: "mqb-1"}},
		"a plain transfer ends it":           {cur: under, act: Action{Kind: TransferLeadership}},
		"deleting the old leader ends it":    {cur: under, act: Action{Kind: DeletePod, Member: "mqb-2"}},
		"done ends it":                       {cur: under, act: Action{Kind: Done}},
		"nothing under way, nothing kept":    {act: Action{Kind: Wait}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			in := leaderTurn()
			in.Handover = tc.cur
			got := HandoverRecord(in, tc.act)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// successor skips the leader and every follower that is not a running,
// current, caught-up voter; with none, the leader's turn waits.
func TestSuccessor(t *testing.T) {
	in := cluster(5, 4)
	outdated(&in, "mqb-4", "mqb-0")
	pod(&in, "mqb-1").Running = false
	pod(&in, "mqb-2").Deleting = true
	leaderMember(in, "mqb-3", func(m *Member) { m.LastContact = ptr(time.Minute) })
	byName := map[string]Pod{}
	for _, p := range in.Pods {
		byName[p.Name] = p
	}
	h := Assess(in)
	if s := successor(in, h, byName); s != "" {
		t.Fatalf("successor %q, want none", s)
	}
	if a := handover(in, h, byName); a.Kind != Wait || !strings.Contains(a.Reason, "no caught-up follower") {
		t.Fatalf("without a successor: %v %q", a.Kind, a.Reason)
	}
	pod(&in, "mqb-1").Running = true
	byName["mqb-1"] = *pod(&in, "mqb-1")
	if s := successor(in, Assess(in), byName); s != "mqb-1" {
		t.Fatalf("successor %q, want mqb-1", s)
	}
}
