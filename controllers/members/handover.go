package members

import (
	"fmt"
	"sort"
	"time"
)

// The leader's turn in a roll is a readiness handover, so that the
// clients it hands over reconnect through the client Service straight to
// the new leader: the Service (which lists ready pods only) must point at
// the successor before the transfer, not a readiness probe period after.
//
//  1. PrepareHandover: the successor (a caught-up follower already on the
//     current template) answers ready and holds the CONNECTs it receives
//     until it leads. Once the Service's EndpointSlices list it ready,
//     PrepareHandover with StepBack: the leader also answers not ready
//     and keeps serving (in this order, the Service always has an
//     endpoint: the probes of two members do not tick together).
//     A member other than these two that the Service lists ready (a
//     successor chosen earlier, whose role has not expired) is asked to
//     stand down (StandDown) meanwhile.
//  2. Once the Service's EndpointSlices list the successor ready and no
//     other member, TransferLeadership to the successor: the leader
//     quiesces, hands leadership over, and disconnects its clients (0x9C);
//     they reconnect to the successor.
//  3. The old leader is now an outdated follower: DeletePod, as any.
//
// If the endpoints do not move within Limits.Handover of the first
// PrepareHandover, the roll stalls (Degraded, an Event) for as long
// again, then tries anew; the members' prepared states expire by
// themselves meanwhile.

// Handover is a readiness handover under way: the successor, and when
// the operator first asked for it.
type Handover struct {
	Successor string
	Since     time.Time
}

// handover is the leader's turn: prepare the successor, then transfer to
// it once the Service follows.
func handover(in Input, h Health, byName map[string]Pod) Action {
	s := successor(in, h, byName)
	if s == "" {
		return Action{Kind: Wait, Leader: h.Leader, Member: h.Leader,
			Reason: fmt.Sprintf("the leader %s is the last to roll, but no caught-up follower runs the current pod template to hand leadership to", h.Leader)}
	}
	var standDown []string
	for name, ready := range in.Endpoints {
		if ready && name != s && name != h.Leader {
			standDown = append(standDown, name)
		}
	}
	sort.Strings(standDown)
	if in.Endpoints[s] && !in.Endpoints[h.Leader] && len(standDown) == 0 {
		return Action{Kind: TransferLeadership, Leader: h.Leader, Member: h.Leader, To: s,
			Reason: fmt.Sprintf("the leader %s is the last to roll: the client Service now routes to %s, which takes leadership and the clients", h.Leader, s)}
	}
	limit := in.Limits.handover()
	if hv := in.Handover; hv != nil && hv.Successor == s {
		if age := in.Now.Sub(hv.Since); age > limit && age <= 2*limit {
			return Action{Kind: Stalled, Leader: h.Leader, Member: h.Leader, To: s,
				Reason: fmt.Sprintf("the client Service's endpoints did not move from the leader %s to its successor %s within %s of the handover starting; the rolling upgrade stops, and tries again after as long",
					h.Leader, s, limit)}
		}
	}
	return Action{Kind: PrepareHandover, Leader: h.Leader, Member: h.Leader, To: s, StepBack: in.Endpoints[s], StandDown: standDown,
		Reason: fmt.Sprintf("the leader %s is the last to roll: making %s ready to take the clients before the leadership transfer", h.Leader, s)}
}

func (l Limits) handover() time.Duration {
	if l.Handover > 0 {
		return l.Handover
	}
	return DefaultLimits.Handover
}

// successor is the follower that takes over: a caught-up voter whose pod
// runs the current template on a node that is not cordoned; the one of the handover under way if it
// still qualifies, else the least behind, then the lowest ordinal; ""
// when there is none.
func successor(in Input, h Health, byName map[string]Pod) string {
	type cand struct {
		name    string
		lag     uint64
		ordinal int
	}
	var cs []cand
	for name, p := range byName {
		if name == h.Leader || p.due() || !p.Running || p.Deleting || !h.healthy[name] {
			continue
		}
		m := h.config[name]
		cs = append(cs, cand{name: name, lag: *m.Lag, ordinal: p.Ordinal})
	}
	if len(cs) == 0 {
		return ""
	}
	for _, c := range cs {
		// The successor of the handover under way, while it qualifies:
		// lags move under load, the choice must not.
		if in.Handover != nil && c.name == in.Handover.Successor {
			return c.name
		}
	}
	sort.Slice(cs, func(i, j int) bool {
		if cs[i].lag != cs[j].lag {
			return cs[i].lag < cs[j].lag
		}
		return cs[i].ordinal < cs[j].ordinal
	})
	return cs[0].name
}

// HandoverRecord is the handover to remember after act (the reconciler
// keeps it in the status): a PrepareHandover starts one (or keeps the one
// under way for the same successor, until it is twice Limits.Handover
// old); a transfer to the successor or the handover's stall keeps it;
// anything else ends it.
func HandoverRecord(in Input, act Action) *Handover {
	cur := in.Handover
	switch {
	case act.Kind == PrepareHandover:
		if cur != nil && cur.Successor == act.To && in.Now.Sub(cur.Since) <= 2*in.Limits.handover() {
			return cur
		}
		return &Handover{Successor: act.To, Since: in.Now}
	case (act.Kind == TransferLeadership || act.Kind == Stalled) && act.To != "" && cur != nil && cur.Successor == act.To:
		return cur
	}
	return nil
}
