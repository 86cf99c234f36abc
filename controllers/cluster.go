package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/broker/adminapi"
	"github.com/bollard-io/bollard/controllers/members"
	"github.com/bollard-io/bollard/controllers/resources"
	"github.com/bollard-io/bollard/controllers/status"
)

// A cluster (spec.replicas 3 or 5) is driven in three steps around the
// StatefulSet: readCluster asks every running member for its view (GET
// /v1/cluster) and decides the StatefulSet's bootstrap flag and size;
// applyStatefulSet writes it; actOnCluster asks members.Decide for the one
// next action (add or remove a member through the leader, roll a member,
// hand leadership over) and carries it out.

// clusterPass is what readCluster saw.
type clusterPass struct {
	pods  []corev1.Pod
	views map[string]members.View
	// cordoned holds the nodes of the pods that are marked unschedulable.
	cordoned map[string]bool
}

// clusterRequeue is how soon a reconcile runs again while a cluster
// changes (nothing in the cluster's objects changes when a member catches
// up, so no watch would bring the reconcile).
const clusterRequeue = 2 * time.Second

// clusterCallTimeout bounds one call to a member's admin API; an
// AddMember that outlasts it leaves the member catching up as a non-voter
// and is asked again on the next reconcile.
const clusterCallTimeout = 5 * time.Second

// ensureClusterSecret makes sure a cluster's secret Secret exists, as
// ensureAdminToken does for the admin token: created once with a random
// secret, never rewritten (a member with another secret could not
// rejoin), refused when another object controls it or it is too short.
func (r *MQTTBrokerReconciler) ensureClusterSecret(ctx context.Context, p *pass) error {
	b := p.broker
	if !resources.Clustered(b) {
		return nil
	}
	name := resources.ClusterSecretName(b)
	s := &corev1.Secret{}
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: b.Namespace, Name: name}, s)
	if apierrors.IsNotFound(err) {
		secret, err := newAdminToken() // 32 random bytes, hex: 64 characters
		if err != nil {
			return err
		}
		s = resources.ClusterSecret(b, secret)
		if err := r.Client.Create(ctx, s); err != nil {
			r.event(b, nil, true, EventApplyFailed, "Apply", "Secret %s: %v", s.Name, err)
			return fmt.Errorf("creating Secret %s: %w", s.Name, err)
		}
		r.event(b, s, false, EventCreated, "Create", "Created Secret %s (the members' replication secret)", s.Name)
		return nil
	}
	if err != nil {
		return err
	}
	var msg string
	if ref := metav1.GetControllerOf(s); ref != nil && ref.UID != b.UID {
		msg = fmt.Sprintf("Secret %s is controlled by %s %s, not by this MQTTBroker; rename or delete it so that the operator can create the cluster's secret",
			name, ref.Kind, ref.Name)
	} else if sec := strings.TrimSpace(string(s.Data[resources.ClusterSecretKey])); len(sec) < minClusterSecret {
		msg = fmt.Sprintf("Secret %s: key %q must hold at least %d bytes; the members refuse to start without it", name, resources.ClusterSecretKey, minClusterSecret)
	}
	if msg != "" {
		p.problem(v1alpha1.ReasonClusterSecretInvalid, "%s", msg)
		p.recheckSecrets = true
		r.event(b, s, true, EventClusterSecretInvalid, "Check", "%s", msg)
	}
	return nil
}

// nodesForbiddenLogged: the operator may not read nodes, and said so.
var nodesForbiddenLogged atomic.Bool

// cordonedNodes returns which of the pods' nodes are cordoned
// (spec.unschedulable: a drain, or a node's maintenance). Each node is
// read directly, not through a cache of every node of the cluster. A node
// that cannot be read counts as not cordoned: its member is not moved.
func (r *MQTTBrokerReconciler) cordonedNodes(ctx context.Context, pods []corev1.Pod) map[string]bool {
	out := map[string]bool{}
	for i := range pods {
		name := pods[i].Spec.NodeName
		if _, seen := out[name]; seen || name == "" {
			continue
		}
		node := &corev1.Node{}
		if err := r.APIReader.Get(ctx, client.ObjectKey{Name: name}, node); err != nil {
			// Forbidden (RBAC without nodes) would repeat at every
			// reconcile: said once.
			if !apierrors.IsNotFound(err) && (!apierrors.IsForbidden(err) || !nodesForbiddenLogged.Swap(true)) {
				log.FromContext(ctx).Error(err, "cannot read a member's node; its member is not moved off it should it be cordoned", "node", name)
			}
			out[name] = false
			continue
		}
		out[name] = node.Spec.Unschedulable
	}
	return out
}

// minClusterSecret is the shortest secret the broker accepts
// (cluster.MinSecretSize).
const minClusterSecret = 32

// readCluster asks each running member of a cluster for its view, and
// decides the StatefulSet's --cluster-bootstrap and size (p.params).
func (r *MQTTBrokerReconciler) readCluster(ctx context.Context, p *pass) error {
	b := p.broker
	if !resources.Clustered(b) {
		b.Status.Leader, b.Status.Cluster = "", nil
		return nil
	}
	var pods corev1.PodList
	if err := r.Client.List(ctx, &pods, client.InNamespace(b.Namespace), client.MatchingLabels(resources.SelectorLabels(b))); err != nil {
		return err
	}
	p.cluster = &clusterPass{pods: pods.Items, views: r.readViews(ctx, p, pods.Items), cordoned: r.cordonedNodes(ctx, pods.Items)}
	cur := &appsv1.StatefulSet{}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: b.Namespace, Name: resources.StatefulSetName(b)}, cur)
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	exists := err == nil
	in := r.clusterInput(p, "")
	formed := members.Assess(in).Leader != ""
	marked, err := r.claimMarked(ctx, p)
	if err != nil {
		return err
	}
	if marked && formed {
		// Member 0 leads: the single node's store was adopted.
		if err := r.markClaim(ctx, p, false); err != nil {
			return err
		}
	}
	p.params.Adopting = adoptingSingle(exists, cur, pods.Items, marked, formed)
	claims := false
	if !exists {
		if claims, err = r.memberClaimsExist(ctx, p); err != nil {
			return err
		}
	}
	p.params.ClusterBootstrap = p.params.Adopting || clusterBootstrap(exists, cur, formed, claims)
	if p.params.Adopting {
		p.clusterRequeue = true
		if err := r.replaceSingleStatefulSet(ctx, p, cur, exists); err != nil {
			return err
		}
	}
	current := 0
	if exists {
		current = int(ptr.Deref(cur.Spec.Replicas, 0))
	}
	p.params.Members = int32(members.Members(in, current))
	return nil
}

// readViews asks the running members in parallel (a member that hangs
// costs one clusterCallTimeout, not one per member); a member that does
// not answer has no view.
func (r *MQTTBrokerReconciler) readViews(ctx context.Context, p *pass, pods []corev1.Pod) map[string]members.View {
	var mu sync.Mutex
	var wg sync.WaitGroup
	views := map[string]members.View{}
	for i := range pods {
		pod := &pods[i]
		if pod.Status.PodIP == "" || !pod.DeletionTimestamp.IsZero() || resources.MemberOrdinal(p.broker, pod.Name) < 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, clusterCallTimeout)
			defer cancel()
			v, err := r.Cluster.ClusterStatus(cctx, pod, p.adminToken)
			if err != nil {
				log.FromContext(ctx).V(1).Info("cannot read the member's cluster view", "pod", pod.Name, "err", err)
				return
			}
			mu.Lock()
			views[pod.Name] = viewOf(v)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return views
}

// clusterBootstrap decides --cluster-bootstrap: on while the cluster is
// being formed (a new StatefulSet over no member claims, or one still
// carrying the flag whose members have not yet elected a leader), off for
// good once a leader serves. The StatefulSet's own template remembers it,
// so an operator restart or a lost status never turns it back on: a member
// added later with the flag would form a cluster of its own. A StatefulSet
// recreated (deleted by hand) over existing claims does not bootstrap:
// members with state need no bootstrap, and members whose claims are empty
// would otherwise form a cluster of their own, without the data, whenever
// they are a majority; they wait to be caught up by the members that have it.
func clusterBootstrap(exists bool, cur *appsv1.StatefulSet, formed, claims bool) bool {
	if !exists {
		return !claims
	}
	if formed {
		return false
	}
	for _, c := range cur.Spec.Template.Spec.Containers {
		if slices.Contains(c.Args, "--cluster-bootstrap") {
			return true
		}
	}
	return false
}

// memberClaimsExist reports whether the claim of any possible member
// (ordinals up to the broker's bound of 7) exists.
func (r *MQTTBrokerReconciler) memberClaimsExist(ctx context.Context, p *pass) (bool, error) {
	for i := range members.MaxMembers {
		pvc := &corev1.PersistentVolumeClaim{}
		err := r.Client.Get(ctx, client.ObjectKey{Namespace: p.broker.Namespace, Name: resources.PVCName(p.broker, i)}, pvc)
		if err == nil {
			return true, nil
		}
		if !apierrors.IsNotFound(err) {
			return false, err
		}
	}
	return false, nil
}

func viewOf(v adminapi.ClusterStatus) members.View {
	out := members.View{Role: v.Role, Serving: v.Serving, Term: v.Term, LeaderID: v.LeaderID,
		AppliedIndex: v.AppliedIndex, CommitIndex: v.CommitIndex}
	for _, m := range v.Members {
		mm := members.Member{ID: m.ID, Voter: m.Voter, Lag: m.Lag}
		if m.LastContactMilli != nil {
			d := time.Duration(*m.LastContactMilli) * time.Millisecond
			mm.LastContact = &d
		}
		out.Members = append(out.Members, mm)
	}
	return out
}

// clusterInput is members.Decide's input; rollHash is the StatefulSet's
// current template roll hash ("" before it is known: every pod counts as
// current).
func (r *MQTTBrokerReconciler) clusterInput(p *pass, rollHash string) members.Input {
	b := p.broker
	in := members.Input{StatefulSet: resources.StatefulSetName(b), Replicas: int(resources.Replicas(b)),
		Views: p.cluster.views, Now: r.now(), Limits: r.ClusterLimits, Adopting: p.params.Adopting}
	if in.Limits == (members.Limits{}) {
		in.Limits = members.DefaultLimits
	}
	if cs := b.Status.Cluster; cs != nil && cs.LastRolled != nil {
		in.Rolled = map[string]time.Time{cs.LastRolled.Name: cs.LastRolled.At.Time}
	}
	if cs := b.Status.Cluster; cs != nil && cs.Handover != nil {
		in.Handover = &members.Handover{Successor: cs.Handover.Successor, Since: cs.Handover.Since.Time}
	}
	if h, ok := r.handovers.get(b); ok {
		in.Handover = h // newer than a status the cache may not have caught up with
	}
	for i := range p.cluster.pods {
		pod := &p.cluster.pods[i]
		n := resources.MemberOrdinal(b, pod.Name)
		if n < 0 {
			continue
		}
		in.Pods = append(in.Pods, members.Pod{
			Name: pod.Name, Ordinal: n, Deleting: !pod.DeletionTimestamp.IsZero(),
			Running: pod.Status.PodIP != "" && pod.Status.Phase == corev1.PodRunning,
			Current: rollHash == "" || pod.Annotations[resources.RollHashAnnotation] == rollHash,
			Created: pod.CreationTimestamp.Time, Single: !resources.RunsMember(&pod.Spec),
			Cordoned: p.cluster.cordoned[pod.Spec.NodeName], Node: pod.Spec.NodeName,
		})
	}
	return in
}

// actOnCluster carries out members.Decide's next action and writes the
// cluster's status.
func (r *MQTTBrokerReconciler) actOnCluster(ctx context.Context, p *pass) error {
	b := p.broker
	if !resources.Clustered(b) || p.cluster == nil {
		return nil
	}
	hash := ""
	if sts := p.obs.StatefulSet; sts != nil {
		hash = sts.Spec.Template.Annotations[resources.RollHashAnnotation]
	}
	in := r.clusterInput(p, hash)
	sts := p.obs.StatefulSet
	in.MemberTemplate = sts != nil && sts.DeletionTimestamp.IsZero() && resources.RunsMember(&sts.Spec.Template.Spec)
	h := members.Assess(in)
	act := r.decide(ctx, p, &in)
	r.clusterStatus(p, in, h, act)
	if act.Kind != members.Done {
		p.clusterRequeue = true
	}
	if p.cfg == nil {
		// The spec renders no valid configuration: the StatefulSet stays
		// as it was, and so do the members.
		return nil
	}
	return r.carryOut(ctx, p, act)
}

// carryOut performs one action.
func (r *MQTTBrokerReconciler) carryOut(ctx context.Context, p *pass, act members.Action) error {
	b := p.broker
	leader := r.podNamed(p, act.Leader)
	cctx, cancel := context.WithTimeout(ctx, clusterCallTimeout)
	defer cancel()
	var err error
	switch act.Kind {
	case members.Done, members.Wait:
		return nil
	case members.Stalled:
		p.problem(v1alpha1.ReasonRollStalled, "%s", act.Reason)
		if !strings.Contains(degradedMessage(b), act.Reason) {
			r.event(b, nil, true, EventRollStalled, "Roll", "%s", act.Reason)
		}
		if act.To != "" {
			r.endHandover(ctx, p, act)
		}
		return nil
	case members.PrepareHandover:
		return r.prepareHandover(ctx, p, act)
	case members.AddMember:
		if err = r.addMember(cctx, p, act, leader); err == nil {
			return nil
		}
	case members.RemoveMember:
		if err = r.Cluster.RemoveMember(cctx, leader, p.adminToken, act.Member); err == nil {
			r.event(b, nil, false, EventMemberRemoved, "Scale", "%s", act.Reason)
		}
	case members.TransferLeadership:
		if act.To != "" {
			err = r.Cluster.TransferLeadershipTo(cctx, leader, p.adminToken, act.To)
		} else {
			err = r.Cluster.TransferLeadership(cctx, leader, p.adminToken)
		}
		if err == nil {
			r.event(b, leader, false, EventLeadershipTransferred, "Roll", "%s", act.Reason)
		}
	case members.DeletePod:
		pod := r.podNamed(p, act.Member)
		err = r.Client.Delete(ctx, pod, client.Preconditions{UID: &pod.UID})
		if err == nil || apierrors.IsNotFound(err) {
			if b.Status.Cluster != nil {
				b.Status.Cluster.LastRolled = &v1alpha1.RolledMember{Name: act.Member, At: metav1.NewTime(r.now())}
			}
			r.event(b, pod, false, EventMemberRolled, "Roll", "%s", act.Reason)
			return nil
		}
		return fmt.Errorf("deleting pod %s: %w", act.Member, err)
	}
	if err != nil {
		r.event(b, nil, true, EventClusterChangeFailed, act.Kind.String(), "%s: %v", act.Reason, err)
		log.FromContext(ctx).Info("cluster change failed", "action", act.Kind.String(), "member", act.Member, "err", err)
	}
	return nil
}

// addMember asks the leader to add act.Member. A member still catching up
// as a non-voter when the call times out is asked again next time (nil);
// the leader's refusal of a member whose build does not read the
// cluster's log entry format is a problem of this pass (Degraded
// MemberRefused), as well as the error.
func (r *MQTTBrokerReconciler) addMember(cctx context.Context, p *pass, act members.Action, leader *corev1.Pod) error {
	b := p.broker
	m := resources.ClusterMember(b, resources.MemberOrdinal(b, act.Member))
	err := r.Cluster.AddMember(cctx, leader, p.adminToken, m)
	switch msg, refused := memberRefused(err); {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(cctx.Err(), context.DeadlineExceeded):
		return nil
	case err == nil:
		r.event(b, nil, false, EventMemberAdded, "Scale", "%s", act.Reason)
	case refused:
		// Not a transient failure: the member's build is older than the
		// cluster's log entry format, and stays refused until it changes.
		p.problem(v1alpha1.ReasonMemberRefused, "the leader %s refuses to add %s: %s; run a build that reads the cluster's log entry format on it",
			act.Leader, act.Member, msg)
	}
	return err
}

func degradedMessage(b *v1alpha1.MQTTBroker) string {
	if c := meta.FindStatusCondition(b.Status.Conditions, v1alpha1.ConditionDegraded); c != nil {
		return c.Message
	}
	return ""
}

// podNamed returns the pod of that name read by readCluster (one with
// only the name when it was not found: the call then fails).
func (r *MQTTBrokerReconciler) podNamed(p *pass, name string) *corev1.Pod {
	for i := range p.cluster.pods {
		if p.cluster.pods[i].Name == name {
			return &p.cluster.pods[i]
		}
	}
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: p.broker.Namespace}}
}

// clusterStatus writes status.leader and status.cluster, and what the
// conditions decide on. A figure no member reported is left unset.
func (r *MQTTBrokerReconciler) clusterStatus(p *pass, in members.Input, h members.Health, act members.Action) {
	b := p.broker
	cs := &v1alpha1.ClusterStatus{ObservedAt: metav1.NewTime(r.now())}
	if h.Leader != "" {
		cs.Term = ptr.To(int64(h.Term))
		cs.Quorum = ptr.To(int32(h.Quorum()))
		cs.HealthyMembers = ptr.To(int32(h.Healthy))
	}
	seen := map[string]bool{}
	add := func(name string, pod *members.Pod) {
		if seen[name] || len(cs.Members) >= 16 {
			return
		}
		seen[name] = true
		m := v1alpha1.ClusterMemberStatus{Name: name, Role: "Unknown", UpToDate: pod != nil && pod.Current}
		if v, ok := in.Views[name]; ok {
			m.Role = string(v.Role)
			m.AppliedIndex = ptr.To(int64(v.AppliedIndex))
		}
		if cm, ok := h.InConfig(name); ok {
			m.Voter = ptr.To(cm.Voter)
			if cm.Lag != nil {
				m.Lag = ptr.To(int64(*cm.Lag))
			} else if name == h.Leader {
				m.Lag = ptr.To(int64(0))
			}
		} else if h.Leader != "" {
			m.Voter = ptr.To(false)
		}
		cs.Members = append(cs.Members, m)
	}
	for i := range in.Pods {
		add(in.Pods[i].Name, &in.Pods[i])
	}
	for _, id := range h.ConfigIDs() {
		add(id, nil)
	}
	slices.SortFunc(cs.Members, func(a, b v1alpha1.ClusterMemberStatus) int { return strings.Compare(a.Name, b.Name) })
	if prev := b.Status.Cluster; prev != nil {
		cs.LastRolled = prev.LastRolled
	}
	hv := members.HandoverRecord(in, act)
	if hv != nil {
		cs.Handover = &v1alpha1.HandoverStatus{Successor: hv.Successor, Since: metav1.NewTime(hv.Since)}
		p.handoverStarted = hv != in.Handover
	}
	r.handovers.set(p.broker, hv)
	b.Status.Leader = h.Leader
	b.Status.Cluster = cs
	outdated := 0
	for _, pod := range in.Pods {
		if pod.Ordinal < in.Replicas && !pod.Current {
			outdated++
		}
	}
	p.obs.Cluster = &status.ClusterObservation{
		Leader: h.Leader, Voters: h.Voters, Healthy: h.Healthy, Quorum: h.Quorum(),
		Outdated: outdated, Settled: act.Kind == members.Done, Next: act.Reason,
	}
}
