// Package members decides, without I/O, what the operator does next to a
// replicated broker (spec.replicas 3 or 5): add or remove a member through
// the leader, delete a member's pod to roll it onto the current pod
// template, hand leadership over before the leader's turn, or wait. The
// reconciler gathers the pods and the members' answers to GET /v1/cluster,
// asks Decide, and carries out the one action it returns.
package members

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/bollard-io/bollard/broker/adminapi"
	"github.com/bollard-io/bollard/broker/config"
)

// Pod is a member's pod as the reconciler found it.
type Pod struct {
	// Name is the pod's name, which is also its member ID.
	Name string
	// Ordinal is the StatefulSet ordinal of the pod.
	Ordinal int
	// Deleting is true once the pod has a deletion timestamp.
	Deleting bool
	// Running is true when the pod has an IP and its broker container
	// runs (the member can be reached).
	Running bool
	// Current is true when the pod runs the current pod template (its
	// roll hash is the StatefulSet's).
	Current bool
	// Created is the pod's creation time.
	Created time.Time
	// Single is true when the pod runs a single node rather than a
	// member (a single node becoming the cluster's member 0, Adopt).
	Single bool
	// Cordoned is true when the pod's node is marked unschedulable (a
	// drain under way): the member moves off it as in a roll, one at a
	// time and only while a quorum stays caught up, since the eviction
	// API cannot (the PodDisruptionBudget counts Ready pods, and only the
	// leader is Ready). Node names the node.
	Cordoned bool
	Node     string
}

// due reports whether the pod must be replaced: it runs an outdated pod
// template, or its node is cordoned.
func (p Pod) due() bool { return !p.Current || p.Cordoned }

// Member is one entry of the leader's Raft configuration, as the leader
// reported it.
type Member struct {
	ID    string
	Voter bool
	// Lag is how many entries the member is behind the leader's last
	// index; nil when the leader has not heard from it this term.
	Lag *uint64
	// LastContact is how long ago the member last answered the leader;
	// nil when unknown.
	LastContact *time.Duration
}

// View is one member's answer to GET /v1/cluster.
type View struct {
	Role         adminapi.Role
	Serving      bool
	Term         uint64
	LeaderID     string
	AppliedIndex uint64
	CommitIndex  uint64
	// Members is the Raft configuration the member knows; with lags only
	// on the leader.
	Members []Member
}

// MaxMembers is the broker's bound on a cluster's members.
const MaxMembers = config.MaxClusterMembers

// Input is what Decide decides on.
type Input struct {
	// StatefulSet names the StatefulSet: member N is its pod
	// "<StatefulSet>-N".
	StatefulSet string
	// Replicas is spec.replicas (3 or 5).
	Replicas int
	// Pods are the StatefulSet's pods (any ordinal).
	Pods []Pod
	// Views are the members' answers by pod name; a pod that did not
	// answer has none.
	Views map[string]View
	// Now is the current time.
	Now time.Time
	// Limits bound what counts as caught up and how long a roll waits.
	Limits Limits
	// Adopting: a single node becomes the cluster's member 0 (replicas
	// 1 -> 3 or 5); the StatefulSet holds member 0 alone until it leads
	// (see Adopt).
	Adopting bool
	// MemberTemplate: the StatefulSet exists (not being deleted) and its
	// pod template runs members, so a deleted pod comes back as one.
	MemberTemplate bool
	// Rolled says when the operator deleted a member's pod to roll it
	// (the last one it did); a pod not back within Limits.ComeBack of it
	// stalls the roll.
	Rolled map[string]time.Time
	// Endpoints says which pods the client Service's EndpointSlices list
	// as ready; nil when they could not be read.
	Endpoints map[string]bool
	// Handover is the readiness handover under way, if any (see
	// handover.go).
	Handover *Handover
}

// Limits are Decide's bounds.
type Limits struct {
	// MaxLag is the most log entries a follower may be behind the leader
	// and count as healthy (caught up).
	MaxLag uint64
	// MaxContact is the longest a follower may have been silent and count
	// as healthy.
	MaxContact time.Duration
	// ComeBack bounds how long a member restarted by a roll may take to be
	// healthy again on the current template before the roll stalls.
	ComeBack time.Duration
	// Handover bounds how long the client Service's endpoints may take to
	// move from the leader to its successor before the roll stalls (for
	// as long again, then it tries anew); 0 means the default.
	Handover time.Duration
}

// DefaultLimits are the reconciler's bounds.
var DefaultLimits = Limits{MaxLag: 256, MaxContact: 5 * time.Second, ComeBack: 10 * time.Minute, Handover: 30 * time.Second}

// Kind is the kind of an Action.
type Kind int

// Kinds of action.
const (
	// Done: the members match the spec; nothing to do.
	Done Kind = iota
	// Wait: something is under way or unsafe; ask again later.
	Wait
	// Stalled: a member restarted by a roll did not come back in time; the
	// roll stops (Degraded) until it does.
	Stalled
	// AddMember: ask the leader to add Member (POST /v1/cluster/members;
	// the broker makes it a voter once caught up).
	AddMember
	// RemoveMember: ask the leader to remove Member (DELETE).
	RemoveMember
	// TransferLeadership: ask the leader to hand leadership to a follower.
	TransferLeadership
	// DeletePod: delete Member's pod; the StatefulSet controller recreates
	// it on the current template.
	DeletePod
	// PrepareHandover: make To (the successor) ready and, with StepBack,
	// the Leader not, ahead of a TransferLeadership to To (a readiness
	// handover).
	PrepareHandover
)

func (k Kind) String() string {
	return [...]string{"Done", "Wait", "Stalled", "AddMember", "RemoveMember", "TransferLeadership", "DeletePod", "PrepareHandover"}[k]
}

// Action is Decide's answer.
type Action struct {
	Kind Kind
	// Member is the member (pod) the action is about, if any.
	Member string
	// Leader is the leader's pod, which AddMember, RemoveMember and
	// TransferLeadership are sent to.
	Leader string
	// To is the successor of a readiness handover (PrepareHandover,
	// TransferLeadership to a named member, a handover's Stalled); "" for
	// a transfer to whichever follower is most up to date.
	To string
	// StepBack: a PrepareHandover also asks the Leader to step back (be
	// unready); only once the Service lists the successor, so that it is
	// never left without an endpoint.
	StepBack bool
	// StandDown are members the Service lists ready that are neither the
	// leader nor the successor (a PrepareHandover ends their handover
	// role): a successor chosen before this one still answers ready and
	// holds the CONNECTs it gets, for nothing. No transfer happens while
	// there are any.
	StandDown []string
	// Reason says why, for the status and Events.
	Reason string
}

// Health is the cluster's health as Decide sees it.
type Health struct {
	// Leader is the pod that leads and serves; "" when none does.
	Leader string
	// Term is the leader's term.
	Term uint64
	// Voters are the voting members of the leader's configuration.
	Voters int
	// Healthy is how many voters are caught up (the leader included).
	Healthy int
	// healthy says which.
	healthy map[string]bool
	// config is the leader's configuration by member ID.
	config map[string]Member
}

// Quorum is the majority of the voters.
func (h Health) Quorum() int { return h.Voters/2 + 1 }

// HasQuorum reports whether a leader serves with a healthy majority.
func (h Health) HasQuorum() bool { return h.Leader != "" && h.Healthy >= h.Quorum() }

// IsHealthy reports whether the member is a caught-up voter (or the
// leader).
func (h Health) IsHealthy(id string) bool { return h.healthy[id] }

// InConfig returns the member's entry in the leader's configuration.
func (h Health) InConfig(id string) (Member, bool) {
	m, ok := h.config[id]
	return m, ok
}

// Assess finds the serving leader (the highest term among members that say
// they lead and serve) and which voters are caught up with it.
func Assess(in Input) Health {
	h := Health{healthy: map[string]bool{}, config: map[string]Member{}}
	pods := map[string]Pod{}
	for _, p := range in.Pods {
		pods[p.Name] = p
	}
	lead, ok := findLeader(in, pods)
	if !ok {
		return h
	}
	h.Leader, h.Term = lead.name, lead.Term
	for _, m := range lead.Members {
		h.config[m.ID] = m
		if !m.Voter {
			continue
		}
		h.Voters++
		p, ok := pods[m.ID]
		if m.ID == h.Leader || (ok && caughtUp(m, p, in.Limits) && follows(in.Views[m.ID], lead, in.Limits)) {
			h.healthy[m.ID] = true
			h.Healthy++
		}
	}
	return h
}

type leaderView struct {
	View
	name string
}

// findLeader is the member with a live pod that says it leads and serves,
// with the highest term.
func findLeader(in Input, pods map[string]Pod) (leaderView, bool) {
	var lead leaderView
	found := false
	for _, name := range sortedKeys(in.Views) {
		v := in.Views[name]
		p, ok := pods[name]
		if !ok || p.Deleting || v.Role != adminapi.RoleLeader || !v.Serving {
			continue
		}
		if !found || v.Term > lead.Term {
			lead, found = leaderView{View: v, name: name}, true
		}
	}
	return lead, found
}

// caughtUp: the follower's pod runs and the leader heard from it lately,
// with few entries missing.
func caughtUp(m Member, p Pod, l Limits) bool {
	return !p.Deleting && p.Running &&
		m.Lag != nil && *m.Lag <= l.MaxLag &&
		m.LastContact != nil && *m.LastContact <= l.MaxContact
}

// follows: the member answered itself, follows this leader in its term,
// and has applied all but at most MaxLag of what the leader committed. The
// leader's figures alone are not enough: a pod deleted by a roll comes back
// at once, and for a moment the leader still reports the old process's
// contact and lag, which would let the roll take the next member down
// before this one is back.
func follows(v View, lead leaderView, l Limits) bool {
	return v.Term == lead.Term && v.LeaderID == lead.name &&
		v.AppliedIndex+l.MaxLag >= lead.CommitIndex
}

// Decide returns the next action: first membership (remove the members
// beyond spec.replicas, add the pods not yet members), then the roll
// (followers one at a time, each back and caught up before the next, then
// leadership transfer, then the old leader). It never removes or deletes a
// member when that would leave fewer healthy voters than a quorum.
func Decide(in Input) Action {
	if in.Adopting {
		return Adopt(in)
	}
	h := Assess(in)
	if h.Leader == "" {
		return Action{Kind: Wait, Reason: "no member reports a leader that serves"}
	}
	if a, ok := shrink(in, h); ok {
		return a
	}
	if a, ok := grow(in, h); ok {
		return a
	}
	return roll(in, h)
}

// shrink removes the members whose ordinal is beyond spec.replicas,
// highest first; the leader hands over leadership before its own removal.
func shrink(in Input, h Health) (Action, bool) {
	top, name := -1, ""
	for id := range h.config {
		if n := in.ordinal(id); n >= in.Replicas && n > top {
			top, name = n, id
		}
	}
	if top < 0 {
		return Action{}, false
	}
	p := Pod{Name: name, Ordinal: top}
	if p.Name == h.Leader {
		if h.Healthy-1 < quorumAfterRemoval(h, p.Name) {
			return Action{Kind: Wait, Leader: h.Leader, Member: p.Name, Reason: fmt.Sprintf("%s leads and is to leave, but too few members are caught up to hand leadership over", p.Name)}, true
		}
		return Action{Kind: TransferLeadership, Leader: h.Leader, Member: p.Name,
			Reason: fmt.Sprintf("%s leads and is to leave the cluster (spec.replicas %d)", p.Name, in.Replicas)}, true
	}
	healthyAfter := h.Healthy
	if h.healthy[p.Name] {
		healthyAfter--
	}
	if healthyAfter < quorumAfterRemoval(h, p.Name) {
		return Action{Kind: Wait, Leader: h.Leader, Member: p.Name, Reason: fmt.Sprintf("removing %s would leave %d caught-up members, fewer than a quorum", p.Name, healthyAfter)}, true
	}
	return Action{Kind: RemoveMember, Leader: h.Leader, Member: p.Name,
		Reason: fmt.Sprintf("spec.replicas is %d: %s leaves the cluster", in.Replicas, p.Name)}, true
}

// quorumAfterRemoval is the quorum of the configuration without id.
func quorumAfterRemoval(h Health, id string) int {
	voters := h.Voters
	if m, ok := h.config[id]; ok && m.Voter {
		voters--
	}
	return voters/2 + 1
}

// grow adds the running pods within spec.replicas that are not voters,
// one at a time, lowest ordinal first: a non-voter (one added earlier that
// is still catching up) is asked again, which promotes it once caught up.
func grow(in Input, h Health) (Action, bool) {
	for _, p := range sortedPods(in.Pods) {
		if p.Ordinal >= in.Replicas || p.Deleting {
			continue
		}
		m, ok := h.config[p.Name]
		if ok && m.Voter {
			continue
		}
		if !p.Running {
			return Action{Kind: Wait, Leader: h.Leader, Member: p.Name, Reason: fmt.Sprintf("waiting for %s to run before it joins", p.Name)}, true
		}
		return Action{Kind: AddMember, Leader: h.Leader, Member: p.Name,
			Reason: fmt.Sprintf("%s joins the cluster (spec.replicas %d); it votes once caught up", p.Name, in.Replicas)}, true
	}
	return Action{}, false
}

// roll deletes the members that do not run the current template.
func roll(in Input, h Health) Action {
	byName := map[string]Pod{}
	var outdated []Pod
	for _, p := range sortedPods(in.Pods) {
		if p.Ordinal >= in.Replicas {
			continue
		}
		byName[p.Name] = p
		if p.due() {
			outdated = append(outdated, p)
		}
	}
	if a, ok := comingBack(in, h, byName, len(outdated) > 0); ok {
		return a
	}
	if len(outdated) == 0 {
		return Action{Kind: Done, Leader: h.Leader}
	}
	var leaderOutdated bool
	// Followers first, highest ordinal first; an unhealthy one costs no
	// healthy member, so it goes before any healthy one.
	sort.SliceStable(outdated, func(i, j int) bool {
		hi, hj := h.healthy[outdated[i].Name], h.healthy[outdated[j].Name]
		if hi != hj {
			return !hi
		}
		return outdated[i].Ordinal > outdated[j].Ordinal
	})
	for _, p := range outdated {
		if p.Name == h.Leader {
			leaderOutdated = true
			continue
		}
		after := h.Healthy
		if h.healthy[p.Name] {
			after--
		}
		if after < h.Quorum() {
			return Action{Kind: Wait, Leader: h.Leader, Member: p.Name,
				Reason: fmt.Sprintf("restarting %s would leave %d of %d voters caught up, fewer than a quorum of %d", p.Name, after, h.Voters, h.Quorum())}
		}
		if p.Current {
			return Action{Kind: DeletePod, Leader: h.Leader, Member: p.Name,
				Reason: fmt.Sprintf("moving follower %s off node %s, which is cordoned", p.Name, p.Node)}
		}
		return Action{Kind: DeletePod, Leader: h.Leader, Member: p.Name,
			Reason: fmt.Sprintf("rolling follower %s onto the current pod template", p.Name)}
	}
	if !leaderOutdated {
		return Action{Kind: Done, Leader: h.Leader}
	}
	if h.Healthy-1 < h.Quorum() {
		return Action{Kind: Wait, Leader: h.Leader, Member: h.Leader,
			Reason: fmt.Sprintf("the leader %s is the last to roll, but only %d of %d voters are caught up", h.Leader, h.Healthy, h.Voters)}
	}
	return handover(in, h, byName)
}

// comingBack holds the roll while a member is still coming back: gone,
// terminating, or on the current template but not yet caught up (past
// Limits.ComeBack, the roll stalls).
func comingBack(in Input, h Health, byName map[string]Pod, rolling bool) (Action, bool) {
	for i := range in.Replicas {
		name := in.memberName(i)
		p, ok := byName[name]
		switch {
		case !ok || (p.Deleting && rolling):
			if at, rolled := in.Rolled[name]; rolled && in.Now.Sub(at) > in.Limits.ComeBack {
				// The reason stays the same while the stall lasts: it is
				// the Degraded message and the Event's, once.
				return Action{Kind: Stalled, Leader: h.Leader, Member: name,
					Reason: fmt.Sprintf("the pod of member %s has not come back within %s of the operator deleting it; the rolling upgrade stops until it does",
						name, in.Limits.ComeBack)}, true
			}
			return Action{Kind: Wait, Leader: h.Leader, Member: name, Reason: fmt.Sprintf("waiting for %s to come back", name)}, true
		case rolling && p.Current && !p.Cordoned && !h.healthy[p.Name]:
			if in.Now.Sub(p.Created) > in.Limits.ComeBack {
				return Action{Kind: Stalled, Leader: h.Leader, Member: p.Name,
					Reason: fmt.Sprintf("member %s runs the current pod template but has not caught up with the leader within %s of its pod starting; the rolling upgrade stops until it does",
						p.Name, in.Limits.ComeBack)}, true
			}
			return Action{Kind: Wait, Leader: h.Leader, Member: p.Name, Reason: fmt.Sprintf("waiting for %s to catch up with the leader", p.Name)}, true
		}
	}
	return Action{}, false
}

// memberName is the name of the pod with ordinal i.
func (in Input) memberName(i int) string { return fmt.Sprintf("%s-%d", in.StatefulSet, i) }

// ordinal is the ordinal of a member ID, or -1 when it names no pod of the
// StatefulSet (a member added by hand: left alone).
func (in Input) ordinal(id string) int { return Ordinal(in.StatefulSet, id) }

// Ordinal is the ordinal of a pod name (a member ID) in the StatefulSet
// named statefulSet ("NAME-0" is 0), or -1 when it is not one of its pods.
func Ordinal(statefulSet, pod string) int {
	rest, ok := strings.CutPrefix(pod, statefulSet+"-")
	if !ok {
		return -1
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 0 || strconv.Itoa(n) != rest {
		return -1
	}
	return n
}

// Members is how many pods the StatefulSet keeps: spec.replicas, or more
// while members beyond it are still in the leader's configuration (their
// pods go once they left). Without a leader, current (the StatefulSet's
// replicas now) is kept when larger: their removal cannot be confirmed.
func Members(in Input, current int) int {
	h := Assess(in)
	n := in.Replicas
	if h.Leader == "" {
		return max(n, current)
	}
	for id := range h.config {
		// Bounded: a member added by hand with a large ordinal must not
		// grow the StatefulSet (the broker allows 7 members at most).
		if o := in.ordinal(id); o+1 > n && o < MaxMembers {
			n = o + 1
		}
	}
	return n
}

func sortedPods(ps []Pod) []Pod {
	out := append([]Pod(nil), ps...)
	sort.Slice(out, func(i, j int) bool { return out[i].Ordinal < out[j].Ordinal })
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ConfigIDs are the member IDs of the leader's configuration, sorted.
func (h Health) ConfigIDs() []string { return sortedKeys(h.config) }

// Adopt decides while a single node becomes the cluster's member 0: its
// pod, still on the single node's template, is deleted once so that it
// restarts as a member, which adopts the single node's store and elects
// itself; then the cluster is formed (Done here: the reconciler stops
// adopting and the grow path adds the other members, which install the
// adopted store's snapshot before they vote). A member 0 that does not
// lead within Limits.ComeBack of its pod starting stalls the change.
func Adopt(in Input) Action {
	h := Assess(in)
	if h.Leader != "" {
		return Action{Kind: Done, Leader: h.Leader, Reason: fmt.Sprintf("%s adopted the single node's store and leads", h.Leader)}
	}
	name := in.memberName(0)
	var p0 Pod
	found := false
	for _, p := range in.Pods {
		if p.Ordinal == 0 {
			p0, found = p, true
		}
	}
	switch {
	case !found:
		return Action{Kind: Wait, Member: name, Reason: fmt.Sprintf("waiting for the pod of %s, which adopts the single node's store", name)}
	case p0.Deleting:
		return Action{Kind: Wait, Member: name, Reason: fmt.Sprintf("%s restarts into cluster mode", name)}
	case p0.Single && !in.MemberTemplate:
		return Action{Kind: Wait, Member: name,
			Reason: fmt.Sprintf("waiting for the cluster's StatefulSet to replace the single node's before %s restarts as the first member", name)}
	case p0.Single || !p0.Current:
		return Action{Kind: DeletePod, Member: name,
			Reason: fmt.Sprintf("restarting the single node %s as the cluster's first member: it adopts its store (one restart; its clients reconnect)", name)}
	case in.Now.Sub(p0.Created) > in.Limits.ComeBack:
		return Action{Kind: Stalled, Member: name,
			Reason: fmt.Sprintf("%s restarted as the cluster's first member but does not lead within %s of its pod starting; see its log (it refuses a store it cannot adopt)",
				name, in.Limits.ComeBack)}
	case !p0.Running:
		return Action{Kind: Wait, Member: name, Reason: fmt.Sprintf("waiting for %s to run as the cluster's first member", name)}
	}
	return Action{Kind: Wait, Member: name, Reason: fmt.Sprintf("%s adopts the single node's store and elects itself", name)}
}
