//go:build envtest

package controllers_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/broker/adminapi"
	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/controllers"
	"github.com/bollard-io/bollard/controllers/members"
	"github.com/bollard-io/bollard/controllers/resources"
)

// clusterLimits are the suite's cluster bounds: a restarted member that
// is not caught up within 4 s stalls the roll (TestClusterRoll).
var clusterLimits = members.Limits{MaxLag: 256, MaxContact: 5 * time.Second, ComeBack: 4 * time.Second, Handover: 3 * time.Second}

// fakeCluster stands in for the members of one replicated broker: who
// leads, the Raft configuration, and which members are behind.
type fakeCluster struct {
	leader string
	term   uint64
	config map[string]bool   // member ID -> voter
	behind map[string]bool   // the leader has not heard from it
	calls  []string          // "add cluster-3 <raftAddress>", "remove ...", "transfer <leader>"
	roles  map[string]string // readiness handover roles by member (handover_envtest_test.go)
	old    map[string]bool   // members whose build does not read the cluster's format: AddMember refuses them
}

// setCluster makes the members of ns answer, with leader leading ids.
func (f *fakeBrokers) setCluster(ns, leader string, ids ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fc := &fakeCluster{leader: leader, term: 3, config: map[string]bool{}, behind: map[string]bool{}, roles: map[string]string{}}
	for _, id := range ids {
		fc.config[id] = true
	}
	f.clusters[ns] = fc
}

// withCluster runs fn on ns's cluster under the lock.
func (f *fakeBrokers) withCluster(ns string, fn func(*fakeCluster)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f.clusters[ns])
}

func (f *fakeBrokers) clusterCalls(ns string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.clusters[ns].calls)
}

func (f *fakeBrokers) ClusterStatus(_ context.Context, pod *corev1.Pod, _ string) (adminapi.ClusterStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fc := f.clusters[pod.Namespace]
	if fc == nil {
		return adminapi.ClusterStatus{}, errors.New("connection refused")
	}
	v := adminapi.ClusterStatus{ID: pod.Name, Role: "follower", Term: fc.term, LeaderID: fc.leader}
	if pod.Name == fc.leader {
		v.Role, v.Serving = "leader", true
	}
	ids := make([]string, 0, len(fc.config))
	for id := range fc.config {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		m := adminapi.ClusterMember{ID: id, Voter: fc.config[id]}
		if v.Role == "leader" && id != pod.Name && !fc.behind[id] {
			m.Lag, m.LastContactMilli = ptr.To(uint64(0)), ptr.To(int64(5))
		}
		v.Members = append(v.Members, m)
	}
	return v, nil
}

func (f *fakeBrokers) notLeader(fc *fakeCluster, pod *corev1.Pod) error {
	if fc == nil || pod.Name != fc.leader {
		return errors.New("409 Conflict: not the leader")
	}
	return nil
}

func (f *fakeBrokers) AddMember(_ context.Context, leader *corev1.Pod, _ string, m config.ClusterMember) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	fc := f.clusters[leader.Namespace]
	if err := f.notLeader(fc, leader); err != nil {
		return err
	}
	if fc.old[m.ID] {
		fc.calls = append(fc.calls, "refused "+m.ID)
		return &controllers.AdminError{Method: "POST", Path: "/v1/cluster/members", Pod: leader.Name, Code: 409, Status: "409 Conflict",
			Answer: adminapi.Error{Error: "cluster: the member does not read the cluster's log entry format: " + m.ID + " reads format 1 at most",
				Reason: adminapi.ReasonMemberFormat}}
	}
	fc.calls = append(fc.calls, "add "+m.ID+" "+m.RaftAddress)
	fc.config[m.ID] = true
	return nil
}

func (f *fakeBrokers) RemoveMember(_ context.Context, leader *corev1.Pod, _, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	fc := f.clusters[leader.Namespace]
	if err := f.notLeader(fc, leader); err != nil {
		return err
	}
	fc.calls = append(fc.calls, "remove "+id)
	delete(fc.config, id)
	return nil
}

func (f *fakeBrokers) TransferLeadership(_ context.Context, leader *corev1.Pod, _ string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	fc := f.clusters[leader.Namespace]
	if err := f.notLeader(fc, leader); err != nil {
		return err
	}
	fc.calls = append(fc.calls, "transfer "+leader.Name)
	ids := make([]string, 0, len(fc.config))
	for id, voter := range fc.config {
		if voter && id != leader.Name && !fc.behind[id] {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return errors.New("no follower to hand leadership to")
	}
	sort.Strings(ids)
	fc.leader, fc.term = ids[0], fc.term+1
	return nil
}

// statefulSetPlayer plays the StatefulSet controller, which envtest does
// not run: it keeps pods 0..replicas-1 of the broker's StatefulSet, made
// from its current template (running, with an IP), and deletes the pods
// beyond, and plays the kubelet of a pod bound to a node that is being
// deleted. It records the order in which it recreated pods and fails the
// test if two members of a cluster were ever gone at once.
type statefulSetPlayer struct {
	t       *testing.T
	b       *v1alpha1.MQTTBroker
	mu      sync.Mutex
	created []string
	onNew   func(name string)
	nodeOf  func(ordinal int) string // the node a new pod is bound to ("": none)
	maxGone int
	stop    chan struct{}
	done    chan struct{}
}

func playStatefulSet(t *testing.T, b *v1alpha1.MQTTBroker) *statefulSetPlayer {
	p := &statefulSetPlayer{t: t, b: b.DeepCopy(), stop: make(chan struct{}), done: make(chan struct{})}
	go p.run()
	t.Cleanup(p.halt)
	return p
}

func (p *statefulSetPlayer) halt() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
}

func (p *statefulSetPlayer) run() {
	defer close(p.done)
	tick := time.NewTicker(30 * time.Millisecond)
	defer tick.Stop()
	first := true
	for {
		select {
		case <-p.stop:
			return
		case <-tick.C:
		}
		if err := p.sync(first); err != nil {
			p.t.Logf("statefulset player: %v", err)
			continue
		}
		first = false
	}
}

// sync makes the pods match the StatefulSet; on the first pass every pod
// is created without counting as recreated.
func (p *statefulSetPlayer) sync(first bool) error {
	sts := &appsv1.StatefulSet{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: p.b.Namespace, Name: resources.StatefulSetName(p.b)}, sts); err != nil {
		return err
	}
	var pods corev1.PodList
	if err := k8s.List(ctx, &pods, client.InNamespace(p.b.Namespace), client.MatchingLabels(resources.SelectorLabels(p.b))); err != nil {
		return err
	}
	have := map[string]bool{}
	for _, pod := range pods.Items {
		if pod.DeletionTimestamp != nil && pod.Spec.NodeName != "" {
			// A pod bound to a node stays Terminating until its kubelet
			// confirms; play that kubelet.
			if err := k8s.Delete(ctx, &pod, client.GracePeriodSeconds(0)); client.IgnoreNotFound(err) != nil {
				return err
			}
			continue
		}
		have[pod.Name] = true
		if resources.MemberOrdinal(p.b, pod.Name) >= int(*sts.Spec.Replicas) {
			if err := k8s.Delete(ctx, &pod); client.IgnoreNotFound(err) != nil {
				return err
			}
		}
	}
	gone := 0
	for i := range int(*sts.Spec.Replicas) {
		if !have[resources.MemberName(p.b, i)] {
			gone++
		}
	}
	p.mu.Lock()
	if !first && gone > p.maxGone {
		p.maxGone = gone
	}
	p.mu.Unlock()
	for i := range int(*sts.Spec.Replicas) {
		name := resources.MemberName(p.b, i)
		if have[name] {
			continue
		}
		// onNew runs before the pod exists, so that what it sets up (a
		// member that stays behind) is in place before any reconcile can
		// see the new pod running.
		p.mu.Lock()
		onNew := p.onNew
		p.mu.Unlock()
		if onNew != nil && !first {
			onNew(name)
		}
		if err := p.createPod(sts, i); err != nil {
			return err
		}
		p.mu.Lock()
		if !first {
			p.created = append(p.created, name)
		}
		p.mu.Unlock()
	}
	return nil
}

func (p *statefulSetPlayer) createPod(sts *appsv1.StatefulSet, ordinal int) error {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: sts.Namespace, Name: resources.MemberName(p.b, ordinal),
			Labels: sts.Spec.Template.Labels, Annotations: sts.Spec.Template.Annotations},
		Spec: *sts.Spec.Template.Spec.DeepCopy(),
	}
	pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: resources.DataVolume, VolumeSource: corev1.VolumeSource{
		PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: resources.PVCName(p.b, ordinal)},
	}})
	if err := k8s.Create(ctx, pod); err != nil {
		return err
	}
	p.mu.Lock()
	nodeOf := p.nodeOf
	p.mu.Unlock()
	if nodeOf != nil {
		if err := bind(pod, nodeOf(ordinal)); err != nil {
			return err
		}
	}
	ip := fmt.Sprintf("10.0.0.%d", 10+ordinal)
	base := pod.DeepCopy()
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}}
	// A patch: the operator may have annotated the new pod meanwhile.
	return k8s.Status().Patch(ctx, pod, client.MergeFrom(base))
}

// bind binds pod to node, as the scheduler does (pods/binding), and
// reads it back.
func bind(pod *corev1.Pod, node string) error {
	if err := k8s.SubResource("binding").Create(ctx, pod, &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name},
		Target:     corev1.ObjectReference{Kind: "Node", Name: node},
	}); err != nil {
		return err
	}
	return k8s.Get(ctx, client.ObjectKeyFromObject(pod), pod)
}

func (p *statefulSetPlayer) recreated() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.created)
}

func (p *statefulSetPlayer) mostGone() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.maxGone
}

// eventCount counts the Events of one reason recorded on b, repetitions
// of a series included.
func eventCount(t *testing.T, b *v1alpha1.MQTTBroker, reason controllers.EventReason) int {
	t.Helper()
	var list eventsv1.EventList
	if err := k8s.List(ctx, &list, client.InNamespace(b.Namespace)); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range list.Items {
		if e.Regarding.Name == b.Name && e.Reason == string(reason) {
			n++
			if e.Series != nil {
				n += int(e.Series.Count) - 1
			}
		}
	}
	return n
}

func newCluster(ns, name string, replicas int32) *v1alpha1.MQTTBroker {
	b := newBroker(ns, name)
	b.Spec.Replicas = ptr.To(replicas)
	return b
}

func args(sts *appsv1.StatefulSet) []string { return sts.Spec.Template.Spec.Containers[0].Args }

// TestClusterRendering: a 3-member broker gets a StatefulSet of 3 members
// started in parallel and rolled by the operator, bootstrapping while it
// forms; a random cluster secret it owns; the replication port on the
// headless Service only; a PDB of one.
func TestClusterRendering(t *testing.T) {
	ns := namespace(t)
	b := observed(t, create(t, newCluster(ns, "trio", 3)))
	sts := statefulSet(t, b)
	if *sts.Spec.Replicas != 3 || sts.Spec.PodManagementPolicy != appsv1.ParallelPodManagement ||
		sts.Spec.UpdateStrategy.Type != appsv1.OnDeleteStatefulSetStrategyType || !slices.Contains(args(sts), "--cluster-bootstrap") {
		t.Errorf("StatefulSet spec: replicas %d, %s, %s, args %q", *sts.Spec.Replicas, sts.Spec.PodManagementPolicy, sts.Spec.UpdateStrategy.Type, args(sts))
	}
	secret := &corev1.Secret{}
	if err := get(t, secret, ns, resources.ClusterSecretName(b)); err != nil {
		t.Fatal(err)
	}
	if len(secret.Data[resources.ClusterSecretKey]) < 32 || metav1.GetControllerOf(secret) == nil || metav1.GetControllerOf(secret).UID != b.UID {
		t.Errorf("cluster Secret: %d bytes, controller %+v", len(secret.Data[resources.ClusterSecretKey]), metav1.GetControllerOf(secret))
	}
	headless, clientSvc := &corev1.Service{}, &corev1.Service{}
	if err := get(t, headless, ns, resources.HeadlessServiceName(b)); err != nil {
		t.Fatal(err)
	}
	if err := get(t, clientSvc, ns, resources.ServiceName(b)); err != nil {
		t.Fatal(err)
	}
	port := func(s *corev1.Service) bool {
		return slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return p.Port == resources.ReplicationPort })
	}
	if !port(headless) || port(clientSvc) {
		t.Errorf("replication port on the headless Service: %v, on the client Service: %v", port(headless), port(clientSvc))
	}
	pdb := &policyv1.PodDisruptionBudget{}
	if err := get(t, pdb, ns, resources.PodDisruptionBudgetName(b)); err != nil {
		t.Fatal(err)
	}
	if pdb.Spec.MaxUnavailable.IntValue() != 1 {
		t.Errorf("PDB maxUnavailable %v, want 1", pdb.Spec.MaxUnavailable)
	}
	// No member answers yet: no leader, and no figure is made up.
	condition(t, b, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonNoLeader)
	cur := &v1alpha1.MQTTBroker{}
	if err := get(t, cur, ns, b.Name); err != nil {
		t.Fatal(err)
	}
	if cur.Status.Leader != "" || (cur.Status.Cluster != nil && cur.Status.Cluster.HealthyMembers != nil) {
		t.Errorf("status without any answer: leader %q, cluster %+v", cur.Status.Leader, cur.Status.Cluster)
	}
}

// TestReplicasAdmission: 2 and 4 are refused, and so are 1 -> 3 and
// 3 -> 1, each with a message that says why; 3 -> 5 -> 3 is accepted; a
// PDB that would let a majority go is refused.
func TestReplicasAdmission(t *testing.T) {
	ns := namespace(t)
	for _, n := range []int32{0, 2, 4, 6, 7} {
		err := k8s.Create(ctx, newCluster(ns, fmt.Sprintf("r%d", n), n))
		if err == nil || !strings.Contains(err.Error(), "replicas must be 1, 3 or 5") {
			t.Errorf("replicas %d: %v, want refused", n, err)
		}
	}
	three := create(t, newCluster(ns, "three", 3))
	err := tryUpdate(three, func(b *v1alpha1.MQTTBroker) { b.Spec.Replicas = ptr.To(int32(1)) })
	if err == nil || !strings.Contains(err.Error(), "cannot go from 3 or 5 down to 1") {
		t.Errorf("3 -> 1: %v, want refused", err)
	}
	for _, n := range []int32{5, 3} {
		if err := tryUpdate(three, func(b *v1alpha1.MQTTBroker) { b.Spec.Replicas = ptr.To(n) }); err != nil {
			t.Errorf("-> %d: %v", n, err)
		}
	}
	for _, n := range []int32{3, 5} {
		one := create(t, newBroker(ns, fmt.Sprintf("one-%d", n)))
		if err := tryUpdate(one, func(b *v1alpha1.MQTTBroker) { b.Spec.Replicas = ptr.To(n) }); err != nil {
			t.Errorf("1 -> %d: %v, want accepted (the single node's store is adopted)", n, err)
		}
	}
	pdb := newCluster(ns, "pdb", 3)
	pdb.Spec.PodDisruptionBudget.MaxUnavailable = ptr.To(int32(2))
	if err := k8s.Create(ctx, pdb); err == nil || !strings.Contains(err.Error(), "must leave a majority") {
		t.Errorf("replicas 3 with maxUnavailable 2: %v, want refused", err)
	}
	pdb = newCluster(ns, "pdb5", 5)
	pdb.Spec.PodDisruptionBudget.MaxUnavailable = ptr.To(int32(2))
	if err := k8s.Create(ctx, pdb); err != nil {
		t.Errorf("replicas 5 with maxUnavailable 2: %v", err)
	}
}

// tryUpdate applies change once to the latest b, retrying only conflicts.
func tryUpdate(b *v1alpha1.MQTTBroker, change func(*v1alpha1.MQTTBroker)) error {
	for {
		cur := &v1alpha1.MQTTBroker{}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(b), cur); err != nil {
			return err
		}
		change(cur)
		err := k8s.Update(ctx, cur)
		if !apierrors.IsConflict(err) {
			return err
		}
	}
}

// formed creates a 3-member broker whose members (faked) elected
// cluster-0, with the StatefulSet played, and waits for it to be Ready.
func formed(t *testing.T, name string, replicas int32) (*v1alpha1.MQTTBroker, *statefulSetPlayer) {
	t.Helper()
	ns := namespace(t)
	b := observed(t, create(t, newCluster(ns, name, replicas)))
	statefulSet(t, b)
	ids := make([]string, 0, replicas)
	for i := range int(replicas) {
		ids = append(ids, resources.MemberName(b, i))
	}
	brokers.setCluster(ns, ids[0], ids...)
	player := playStatefulSet(t, b)
	condition(t, b, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonLeaderServing)
	eventually(t, func() error {
		sts := &appsv1.StatefulSet{}
		if err := get(t, sts, ns, resources.StatefulSetName(b)); err != nil {
			return err
		}
		if slices.Contains(args(sts), "--cluster-bootstrap") {
			return errors.New("--cluster-bootstrap still set once a leader serves")
		}
		return nil
	})
	eventually(t, func() error {
		cur := &v1alpha1.MQTTBroker{}
		if err := get(t, cur, ns, b.Name); err != nil {
			return err
		}
		cl := cur.Status.Cluster
		if cur.Status.Leader != ids[0] || cl == nil || len(cl.Members) != int(replicas) || ptr.Deref(cl.HealthyMembers, 0) != replicas {
			return fmt.Errorf("status of a formed cluster: leader %q, cluster %+v", cur.Status.Leader, cl)
		}
		for _, m := range cl.Members {
			if m.Role == "Unknown" || !ptr.Deref(m.Voter, false) || m.Lag == nil || *m.Lag != 0 || m.AppliedIndex == nil || !m.UpToDate {
				return fmt.Errorf("member %+v", m)
			}
		}
		return nil
	})
	if len(player.recreated()) != 0 {
		t.Fatalf("dropping --cluster-bootstrap restarted members: %q", player.recreated())
	}
	return b, player
}

// TestClusterRoll: an image change rolls the followers one at a time,
// highest first, each back and caught up before the next; a member that
// stays behind stalls the roll (Degraded RollStalled, an Event) until it
// catches up; the leader goes last, after handing leadership over. Never
// are two members gone at once.
func TestClusterRoll(t *testing.T) {
	b, player := formed(t, "roll", 3)
	ns := b.Namespace
	playEndpoints(t, b, 0)
	// The first member back stays behind the leader until released.
	release := make(chan struct{})
	var once sync.Once
	player.mu.Lock()
	player.onNew = func(name string) {
		once.Do(func() {
			brokers.withCluster(ns, func(fc *fakeCluster) { fc.behind[name] = true })
			go func() {
				<-release
				brokers.withCluster(ns, func(fc *fakeCluster) { delete(fc.behind, name) })
			}()
		})
	}
	player.mu.Unlock()
	update(t, b, func(b *v1alpha1.MQTTBroker) { b.Spec.Image = "example.com/bollard:v2" })

	eventually(t, func() error {
		if got := player.recreated(); !slices.Equal(got, []string{"roll-2"}) {
			return fmt.Errorf("recreated %q, want roll-2 first", got)
		}
		return nil
	})
	condition(t, b, v1alpha1.ConditionDegraded, metav1.ConditionTrue, v1alpha1.ReasonRollStalled)
	hasEvent(t, b, controllers.EventRollStalled, "roll-2")
	// The stall lasts a few reconciles (every 2 s): one Event, not one each.
	consistently(t, 3*time.Second, func() error {
		if got := player.recreated(); len(got) != 1 {
			return fmt.Errorf("the roll went on while roll-2 was behind: %q", got)
		}
		return nil
	})
	if n := eventCount(t, b, controllers.EventRollStalled); n != 1 {
		t.Errorf("%d RollStalled Events for one stall, want 1", n)
	}
	close(release)

	eventually(t, func() error {
		if got := player.recreated(); len(got) != 3 {
			return fmt.Errorf("recreated %q", got)
		}
		return nil
	})
	if got := player.recreated(); !slices.Equal(got, []string{"roll-2", "roll-1", "roll-0"}) {
		t.Errorf("roll order %q, want followers highest first, the old leader last", got)
	}
	// The leader's turn: a readiness handover to roll-1 (asked again on
	// every reconcile until the endpoints follow), then the transfer.
	if calls := compact(brokers.clusterCalls(ns)); !slices.Equal(calls, []string{
		"handover roll-1 successor", "handover roll-0 none", "handover roll-0 predecessor", "transfer roll-0 to roll-1",
	}) {
		t.Errorf("cluster calls %q, want a handover to roll-1, then one leadership transfer by roll-0 to roll-1", calls)
	}
	if g := player.mostGone(); g > 1 {
		t.Errorf("%d members were gone at once", g)
	}
	condition(t, b, v1alpha1.ConditionDegraded, metav1.ConditionFalse, v1alpha1.ReasonAsExpected)
	condition(t, b, v1alpha1.ConditionProgressing, metav1.ConditionFalse, v1alpha1.ReasonRolloutComplete)
	condition(t, b, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonLeaderServing)
	hasEvent(t, b, controllers.EventLeadershipTransferred, "roll-0")
	cur := &v1alpha1.MQTTBroker{}
	eventually(t, func() error {
		if err := get(t, cur, ns, b.Name); err != nil {
			return err
		}
		if cur.Status.Leader != "roll-1" {
			return fmt.Errorf("status.leader %q, want roll-1", cur.Status.Leader)
		}
		if lr := cur.Status.Cluster.LastRolled; lr == nil || lr.Name != "roll-0" || lr.At.IsZero() {
			return fmt.Errorf("status.cluster.lastRolled %+v, want roll-0", lr)
		}
		return nil
	})
}

// TestClusterScale: 3 -> 5 adds the new members through the leader, one
// at a time; 5 -> 3 removes them through the leader first, highest first,
// and only then shrinks the StatefulSet.
func TestClusterScale(t *testing.T) {
	b, player := formed(t, "scale", 3)
	ns := b.Namespace
	update(t, b, func(b *v1alpha1.MQTTBroker) { b.Spec.Replicas = ptr.To(int32(5)) })
	host := func(id string) string { return id + "." + resources.HeadlessServiceName(b) + "." + ns + ".svc:8081" }
	eventually(t, func() error {
		want := []string{"add scale-3 " + host("scale-3"), "add scale-4 " + host("scale-4")}
		if got := brokers.clusterCalls(ns); !slices.Equal(got, want) {
			return fmt.Errorf("calls %q, want %q", got, want)
		}
		return nil
	})
	condition(t, b, v1alpha1.ConditionProgressing, metav1.ConditionFalse, v1alpha1.ReasonRolloutComplete)
	sts := statefulSet(t, b)
	if slices.Contains(args(sts), "--cluster-bootstrap") {
		t.Error("new members were told to bootstrap")
	}
	if got := player.recreated(); !slices.Equal(got, []string{"scale-3", "scale-4"}) {
		t.Errorf("pods created %q: the existing members must not restart to scale", got)
	}

	brokers.withCluster(ns, func(fc *fakeCluster) { fc.calls = nil })
	update(t, b, func(b *v1alpha1.MQTTBroker) { b.Spec.Replicas = ptr.To(int32(3)) })
	eventually(t, func() error {
		want := []string{"remove scale-4", "remove scale-3"}
		if got := brokers.clusterCalls(ns); !slices.Equal(got, want) {
			return fmt.Errorf("calls %q, want %q", got, want)
		}
		return nil
	})
	eventually(t, func() error {
		if err := get(t, sts, ns, sts.Name); err != nil {
			return err
		}
		if *sts.Spec.Replicas != 3 {
			return fmt.Errorf("StatefulSet replicas %d, want 3", *sts.Spec.Replicas)
		}
		return nil
	})
	condition(t, b, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonLeaderServing)
	cur := &v1alpha1.MQTTBroker{}
	if err := get(t, cur, ns, b.Name); err != nil {
		t.Fatal(err)
	}
	if c := meta.FindStatusCondition(cur.Status.Conditions, v1alpha1.ConditionDegraded); c == nil || c.Status != metav1.ConditionFalse {
		t.Errorf("Degraded after scaling: %+v", c)
	}
}

// TestClusterMemberRefused: a member the leader refuses to add (its build
// does not read the cluster's log entry format) makes the broker Degraded
// with reason MemberRefused, naming it, for as long as it is refused; once
// it runs a build that reads the format it is added and Degraded clears.
func TestClusterMemberRefused(t *testing.T) {
	b, _ := formed(t, "refused", 3)
	ns := b.Namespace
	brokers.withCluster(ns, func(fc *fakeCluster) { fc.old = map[string]bool{"refused-3": true} })
	update(t, b, func(b *v1alpha1.MQTTBroker) { b.Spec.Replicas = ptr.To(int32(5)) })
	condition(t, b, v1alpha1.ConditionDegraded, metav1.ConditionTrue, v1alpha1.ReasonMemberRefused)
	cur := &v1alpha1.MQTTBroker{}
	if err := get(t, cur, ns, b.Name); err != nil {
		t.Fatal(err)
	}
	if c := meta.FindStatusCondition(cur.Status.Conditions, v1alpha1.ConditionDegraded); c == nil ||
		!strings.Contains(c.Message, "refused-3") || !strings.Contains(c.Message, "reads format 1 at most") {
		t.Fatalf("Degraded does not say which member is refused and why: %+v", c)
	}
	brokers.withCluster(ns, func(fc *fakeCluster) { fc.old = nil })
	eventually(t, func() error {
		got := brokers.clusterCalls(ns)
		for _, id := range []string{"refused-3", "refused-4"} {
			if !slices.Contains(got, "add "+id+" "+id+"."+resources.HeadlessServiceName(b)+"."+ns+".svc:8081") {
				return fmt.Errorf("calls %q: %s not added", got, id)
			}
		}
		return nil
	})
	condition(t, b, v1alpha1.ConditionDegraded, metav1.ConditionFalse, "")
}

// TestClusterShrinkWaitsForRemoval: while the leader has not removed a
// member, its pod stays.
func TestClusterShrinkWaitsForRemoval(t *testing.T) {
	b, _ := formed(t, "shrink", 5)
	ns := b.Namespace
	// The leader does not answer: nothing can be confirmed removed.
	brokers.withCluster(ns, func(fc *fakeCluster) { fc.leader = "" })
	condition(t, b, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonNoLeader)
	update(t, b, func(b *v1alpha1.MQTTBroker) { b.Spec.Replicas = ptr.To(int32(3)) })
	observed(t, b)
	consistently(t, time.Second, func() error {
		sts := &appsv1.StatefulSet{}
		if err := get(t, sts, ns, resources.StatefulSetName(b)); err != nil {
			return err
		}
		if *sts.Spec.Replicas != 5 {
			return fmt.Errorf("StatefulSet shrank to %d before the members left", *sts.Spec.Replicas)
		}
		return nil
	})
}

// TestClusterRecreatedOverClaimsDoesNotBootstrap: a cluster's StatefulSet
// deleted by hand comes back without --cluster-bootstrap while a member's
// claim exists (members whose claims were emptied must not elect each
// other into an empty cluster).
func TestClusterRecreatedOverClaimsDoesNotBootstrap(t *testing.T) {
	b, _ := formed(t, "recreated", 3)
	ns := b.Namespace
	claim := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: resources.PVCName(b, 1), Labels: resources.Labels(b)},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
	if err := k8s.Create(ctx, claim); err != nil {
		t.Fatal(err)
	}
	// No leader answers (as when the members with data are down): a
	// bootstrap flag rendered now would stay.
	brokers.withCluster(ns, func(fc *fakeCluster) { fc.leader = "" })
	condition(t, b, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonNoLeader)
	old := &appsv1.StatefulSet{}
	if err := get(t, old, ns, resources.StatefulSetName(b)); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Delete(ctx, old); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() error {
		sts := &appsv1.StatefulSet{}
		if err := get(t, sts, ns, resources.StatefulSetName(b)); err != nil {
			return err
		}
		if sts.UID == old.UID {
			return errors.New("not recreated yet")
		}
		if slices.Contains(args(sts), "--cluster-bootstrap") {
			t.Fatalf("recreated over member claims with --cluster-bootstrap: %q", args(sts))
		}
		return nil
	})
}

// TestClusterMovesMembersOffCordonedNodes: a drain cannot evict a
// follower (the PodDisruptionBudget counts only the Ready leader), so the
// operator moves a member whose node is cordoned itself, as in a roll: a
// follower at once while a quorum stays caught up, the leader after a
// readiness handover to a follower on a node that is not cordoned; never
// two members gone at once, and a member that landed on a schedulable
// node stays.
func TestClusterMovesMembersOffCordonedNodes(t *testing.T) {
	b, player := formed(t, "drain", 3)
	ns := b.Namespace
	playEndpoints(t, b, 0)
	node := func(name string) *corev1.Node {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: ns + "-" + name}}
		if err := k8s.Create(ctx, n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	nodes := []*corev1.Node{node("a"), node("b"), node("c")}
	spare := node("spare")
	for i, n := range nodes {
		pod := &corev1.Pod{}
		if err := get(t, pod, ns, resources.MemberName(b, i)); err != nil {
			t.Fatal(err)
		}
		if err := bind(pod, n.Name); err != nil {
			t.Fatal(err)
		}
	}
	player.mu.Lock()
	player.nodeOf = func(int) string { return spare.Name }
	player.mu.Unlock()
	cordon := func(n *corev1.Node) { update(t, n, func(n *corev1.Node) { n.Spec.Unschedulable = true }) }

	// A follower's node is cordoned: that member, and only it, moves.
	cordon(nodes[1])
	eventually(t, func() error {
		if got := player.recreated(); !slices.Equal(got, []string{"drain-1"}) {
			return fmt.Errorf("recreated %q, want drain-1", got)
		}
		return nil
	})
	hasEvent(t, b, controllers.EventMemberRolled, "cordoned")
	consistently(t, 2*time.Second, func() error {
		if got := player.recreated(); len(got) != 1 {
			return fmt.Errorf("a member on a schedulable node was moved: %q", got)
		}
		return nil
	})

	// The leader's node: a handover to a follower whose node is not
	// cordoned (drain-2 or the moved drain-1), then the move.
	cordon(nodes[0])
	eventually(t, func() error {
		if got := player.recreated(); !slices.Equal(got, []string{"drain-1", "drain-0"}) {
			return fmt.Errorf("recreated %q, want drain-1 then drain-0", got)
		}
		return nil
	})
	if calls := compact(brokers.clusterCalls(ns)); !slices.Contains(calls, "transfer drain-0 to drain-1") && !slices.Contains(calls, "transfer drain-0 to drain-2") {
		t.Errorf("cluster calls %q: no leadership transfer by drain-0 before its move", calls)
	}
	if g := player.mostGone(); g > 1 {
		t.Errorf("%d members were gone at once", g)
	}
	condition(t, b, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonLeaderServing)
}
