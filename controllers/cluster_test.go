package controllers

import (
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/controllers/members"
	"github.com/bollard-io/bollard/controllers/resources"
)

func TestClusterBootstrap(t *testing.T) {
	with := &appsv1.StatefulSet{}
	with.Spec.Template.Spec.Containers = []corev1.Container{{Args: []string{"--config", "x", "--cluster-bootstrap"}}}
	without := &appsv1.StatefulSet{}
	without.Spec.Template.Spec.Containers = []corev1.Container{{Args: []string{"--config", "x"}}}
	cases := map[string]struct {
		exists bool
		cur    *appsv1.StatefulSet
		formed bool
		claims bool
		want   bool
	}{
		"a new cluster forms":                  {false, &appsv1.StatefulSet{}, false, false, true},
		"still forming":                        {true, with, false, false, true},
		"formed: the flag goes":                {true, with, true, false, false},
		"gone for good, even without a leader": {true, without, false, false, false},
		"gone for good, with a leader":         {true, without, true, false, false},
		// Deleted by hand and recreated: the members' claims hold their
		// state (or are empty, and must not form a cluster of their own).
		"a StatefulSet recreated over claims does not bootstrap":                {false, &appsv1.StatefulSet{}, true, true, false},
		"a StatefulSet recreated over claims, no leader, does not bootstrap":    {false, &appsv1.StatefulSet{}, false, true, false},
		"a StatefulSet recreated with no claims left forms a new cluster again": {false, &appsv1.StatefulSet{}, false, false, true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := clusterBootstrap(tc.exists, tc.cur, tc.formed, tc.claims); got != tc.want {
				t.Errorf("clusterBootstrap = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestClusterStatusNeverMakesUpFigures: what no member reported is left
// out of status.cluster, never written as 0.
func TestClusterStatusNeverMakesUpFigures(t *testing.T) {
	b := &v1alpha1.MQTTBroker{ObjectMeta: metav1.ObjectMeta{Name: "mqb", Namespace: "ns"}, Spec: v1alpha1.MQTTBrokerSpec{Replicas: ptr.To(int32(3))}}
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	r := &MQTTBrokerReconciler{Now: func() time.Time { return now }}
	p := &pass{broker: b}
	var pods []members.Pod
	for i, name := range []string{"mqb-0", "mqb-1", "mqb-2"} {
		pods = append(pods, members.Pod{Name: name, Ordinal: i, Running: true, Current: true})
	}
	// Nobody answers.
	in := members.Input{StatefulSet: "mqb", Replicas: 3, Pods: pods, Views: map[string]members.View{}, Now: now, Limits: members.DefaultLimits}
	h := members.Assess(in)
	r.clusterStatus(p, in, h, members.Decide(in))
	cs := b.Status.Cluster
	if b.Status.Leader != "" || cs.Term != nil || cs.Quorum != nil || cs.HealthyMembers != nil || len(cs.Members) != 3 {
		t.Fatalf("status without answers: leader %q, %+v", b.Status.Leader, cs)
	}
	for _, m := range cs.Members {
		if m.Role != "Unknown" || m.Voter != nil || m.Lag != nil || m.AppliedIndex != nil {
			t.Errorf("member without an answer: %+v", m)
		}
	}
	// The leader answers; mqb-2 does not, and the leader has not heard it.
	cfg := []members.Member{{ID: "mqb-0", Voter: true}, {ID: "mqb-1", Voter: true, Lag: ptr.To(uint64(3)), LastContact: ptr.To(time.Millisecond)},
		{ID: "mqb-2", Voter: true}}
	in.Views["mqb-0"] = members.View{Role: "leader", Serving: true, Term: 9, AppliedIndex: 40, Members: cfg}
	in.Views["mqb-1"] = members.View{Role: "follower", Term: 9, LeaderID: "mqb-0", AppliedIndex: 38, Members: cfg}
	h = members.Assess(in)
	r.clusterStatus(p, in, h, members.Decide(in))
	cs = b.Status.Cluster
	if b.Status.Leader != "mqb-0" || *cs.Term != 9 || *cs.Quorum != 2 || *cs.HealthyMembers != 2 {
		t.Fatalf("status with a leader: %q %+v", b.Status.Leader, cs)
	}
	m2 := cs.Members[2]
	if m2.Name != "mqb-2" || m2.Role != "Unknown" || !*m2.Voter || m2.Lag != nil || m2.AppliedIndex != nil {
		t.Errorf("an unheard member: %+v", m2)
	}
	if m1 := cs.Members[1]; *m1.Lag != 3 || *m1.AppliedIndex != 38 || m1.Role != "follower" {
		t.Errorf("a follower: %+v", m1)
	}
	if p.obs.Cluster == nil || p.obs.Cluster.Leader != "mqb-0" || p.obs.Cluster.Healthy != 2 {
		t.Errorf("observation %+v", p.obs.Cluster)
	}
}

func TestAdoptingSingle(t *testing.T) {
	sts := func(args ...string) *appsv1.StatefulSet {
		s := &appsv1.StatefulSet{}
		s.Spec.Template.Spec.Containers = []corev1.Container{{Args: append([]string{"--config", "x"}, args...)}}
		return s
	}
	single := sts()
	adopting := sts("--cluster-member-id=$(P)", "--cluster-members=a-0=x:1=y:2", "--cluster-bootstrap")
	forming := sts("--cluster-member-id=$(P)", "--cluster-members=a-0=x:1,a-1=x:2,a-2=x:3", "--cluster-bootstrap")
	formed := sts("--cluster-member-id=$(P)", "--cluster-members=a-0=x:1,a-1=x:2,a-2=x:3")
	alone := sts("--cluster-member-id=$(P)", "--cluster-members=a-0=x:1=y:2")
	pod := func(args ...string) corev1.Pod {
		return corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Args: args}}}}
	}
	singlePod, memberPod := pod("--config", "x"), pod("--cluster-member-id=$(P)")
	deleting := pod("--config", "x")
	deleting.DeletionTimestamp = ptr.To(metav1.Now())
	cases := map[string]struct {
		exists bool
		cur    *appsv1.StatefulSet
		pods   []corev1.Pod
		marked bool
		formed bool
		want   bool
	}{
		"StatefulSet gone, claim marked, no pod":    {false, nil, nil, true, false, true},
		"StatefulSet gone, claim marked, formed":    {false, nil, []corev1.Pod{memberPod}, true, true, false},
		"cluster's StatefulSet, claim still marked": {true, formed, []corev1.Pod{memberPod}, true, false, false},
		"single node's StatefulSet":                 {true, single, []corev1.Pod{singlePod}, false, false, true},
		"member 0 alone, bootstrapping":             {true, adopting, []corev1.Pod{memberPod}, false, false, true},
		"a cluster created as one, forming":         {true, forming, nil, false, false, false},
		"formed cluster":                            {true, formed, []corev1.Pod{memberPod}, false, false, false},
		"member 0 alone without bootstrap":          {true, alone, nil, false, false, false},
		"adopted: member 0 leads":                   {true, adopting, []corev1.Pod{memberPod}, false, true, false},
		"StatefulSet gone, single node's pod runs":  {false, nil, []corev1.Pod{singlePod}, false, false, true},
		"StatefulSet gone, single pod deleting":     {false, nil, []corev1.Pod{deleting}, false, false, false},
		"StatefulSet gone, only members":            {false, nil, []corev1.Pod{memberPod}, false, false, false},
		"new cluster":                               {false, nil, nil, false, false, false},
		"single node's StatefulSet, leader somehow": {true, single, nil, false, true, false},
	}
	for name, tc := range cases {
		if got := adoptingSingle(tc.exists, tc.cur, tc.pods, tc.marked, tc.formed); got != tc.want {
			t.Errorf("%s: adoptingSingle = %v, want %v", name, got, tc.want)
		}
	}
}

// TestHandoverSurvivesAStaleCache: a reconcile that reads the MQTTBroker
// from a cache that has not caught up with the status the reconcile before
// it wrote still continues the handover under way (handoverMemory),
// instead of choosing the successor anew as the lags moved.
func TestHandoverSurvivesAStaleCache(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	b := &v1alpha1.MQTTBroker{ObjectMeta: metav1.ObjectMeta{Name: "mqb", Namespace: "ns", UID: "uid-1"},
		Spec: v1alpha1.MQTTBrokerSpec{Replicas: ptr.To(int32(3))}}
	pods := func() []corev1.Pod {
		var out []corev1.Pod
		for i, hash := range []string{"old", "new", "new"} { // the leader, mqb-0, rolls last
			out = append(out, corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: resources.MemberName(b, i), Namespace: "ns",
					Annotations: map[string]string{resources.RollHashAnnotation: hash}},
				Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.1"},
			})
		}
		return out
	}
	views := func(lag1, lag2 uint64) map[string]members.View {
		cfg := []members.Member{{ID: "mqb-0", Voter: true},
			{ID: "mqb-1", Voter: true, Lag: ptr.To(lag1), LastContact: ptr.To(time.Millisecond)},
			{ID: "mqb-2", Voter: true, Lag: ptr.To(lag2), LastContact: ptr.To(time.Millisecond)}}
		return map[string]members.View{
			"mqb-0": {Role: "leader", Serving: true, Term: 9, AppliedIndex: 100, Members: cfg},
			"mqb-1": {Role: "follower", Term: 9, LeaderID: "mqb-0", AppliedIndex: 100 - lag1, Members: cfg},
			"mqb-2": {Role: "follower", Term: 9, LeaderID: "mqb-0", AppliedIndex: 100 - lag2, Members: cfg},
		}
	}
	// One pass: the input read from b, the decision, the status written
	// into b (as the reconcile writes it).
	decide := func(r *MQTTBrokerReconciler, b *v1alpha1.MQTTBroker, lag1, lag2 uint64) members.Action {
		p := &pass{broker: b, cluster: &clusterPass{pods: pods(), views: views(lag1, lag2)}}
		in := r.clusterInput(p, "new")
		in.MemberTemplate = true
		act := members.Decide(in)
		r.clusterStatus(p, in, members.Assess(in), act)
		return act
	}
	r := &MQTTBrokerReconciler{Now: func() time.Time { return now }}
	stale := b.DeepCopy() // the cache's copy, from before any status write
	if act := decide(r, b, 0, 5); act.Kind != members.PrepareHandover || act.To != "mqb-1" {
		t.Fatalf("first pass: %+v, want PrepareHandover to mqb-1 (the least behind)", act)
	}
	if hv := b.Status.Cluster.Handover; hv == nil || hv.Successor != "mqb-1" {
		t.Fatalf("status handover %+v", hv)
	}
	now = now.Add(250 * time.Millisecond)
	if act := decide(r, stale.DeepCopy(), 5, 0); act.Kind != members.PrepareHandover || act.To != "mqb-1" {
		t.Fatalf("a pass reading a stale cache, mqb-2 now least behind: %+v, want mqb-1 kept", act)
	}
	// What the memory is for: from the stale copy alone, mqb-2.
	fresh := &MQTTBrokerReconciler{Now: r.Now}
	if act := decide(fresh, stale.DeepCopy(), 5, 0); act.To != "mqb-2" {
		t.Fatalf("without the memory: %+v, want mqb-2", act)
	}
	// Another object of the same name starts from its own status.
	other := stale.DeepCopy()
	other.UID = "uid-2"
	if act := decide(r, other, 5, 0); act.To != "mqb-2" {
		t.Fatalf("a recreated MQTTBroker: %+v, want mqb-2", act)
	}
}
