package resources

import (
	"errors"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/bollard-io/bollard/api/v1alpha1"
)

func clusterBroker(t *testing.T, replicas int32) *v1alpha1.MQTTBroker {
	t.Helper()
	b := loadBroker(t, "cluster")
	b.Spec.Replicas = ptr.To(replicas)
	return b
}

func TestClusterStatefulSet(t *testing.T) {
	b := clusterBroker(t, 5)
	sts := StatefulSet(b, mustConfig(t, b), Params{DefaultImage: testImage})
	s := sts.Spec
	if *s.Replicas != 5 || s.PodManagementPolicy != appsv1.ParallelPodManagement || s.UpdateStrategy.Type != appsv1.OnDeleteStatefulSetStrategyType {
		t.Errorf("replicas %d, policy %s, strategy %s; want 5, Parallel, OnDelete", *s.Replicas, s.PodManagementPolicy, s.UpdateStrategy.Type)
	}
	c := s.Template.Spec.Containers[0]
	members := ""
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--cluster-members="); ok {
			members = v
		}
	}
	if n := strings.Count(members, ",") + 1; n != 5 || !strings.Contains(members, "cluster-4=cluster-4.cluster-headless.default.svc:8081=cluster-4.cluster-headless.default.svc:1883") {
		t.Errorf("--cluster-members = %q, want the 5 members at their headless names", members)
	}
	if slices.Contains(c.Args, "--cluster-bootstrap") {
		t.Error("--cluster-bootstrap without Params.ClusterBootstrap")
	}
	if !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool {
		return p.Name == PortReplication && p.ContainerPort == ReplicationPort
	}) {
		t.Errorf("no replication container port: %+v", c.Ports)
	}
	if rp := c.ReadinessProbe; rp.HTTPGet.Path != "/readyz" || rp.PeriodSeconds != 1 || rp.FailureThreshold != 1 {
		t.Errorf("readiness probe %+v: the client Service must follow the leader within a second", rp)
	}
	if a := s.Template.Spec.Affinity; a == nil || a.PodAntiAffinity == nil || len(a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) != 1 {
		t.Errorf("members are not spread over nodes by default: %+v", a)
	}
	// Scaling down: the pods of leaving members stay until they left.
	sts = StatefulSet(clusterBroker(t, 3), mustConfig(t, b), Params{DefaultImage: testImage, Members: 5})
	if *sts.Spec.Replicas != 5 {
		t.Errorf("replicas with Params.Members 5 = %d, want 5", *sts.Spec.Replicas)
	}
}

// TestClusterPlacementIsOverridable: the spec's own affinity or topology
// spread replaces the default anti-affinity.
func TestClusterPlacementIsOverridable(t *testing.T) {
	b := clusterBroker(t, 3)
	b.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: "topology.kubernetes.io/zone",
		WhenUnsatisfiable: corev1.DoNotSchedule, LabelSelector: &metav1.LabelSelector{MatchLabels: SelectorLabels(b)}}}
	if a := StatefulSet(b, mustConfig(t, b), Params{}).Spec.Template.Spec.Affinity; a != nil {
		t.Errorf("affinity %+v added beside the spec's topologySpreadConstraints", a)
	}
	b = clusterBroker(t, 3)
	b.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{}}
	if a := StatefulSet(b, mustConfig(t, b), Params{}).Spec.Template.Spec.Affinity; a.PodAntiAffinity != nil {
		t.Errorf("the spec's affinity was changed: %+v", a)
	}
}

// TestRollHash: membership flags (bootstrap, the member list) change the
// template without a roll; anything else a member must restart for rolls.
func TestRollHash(t *testing.T) {
	b := clusterBroker(t, 3)
	c := mustConfig(t, b)
	roll := func(b *v1alpha1.MQTTBroker, p Params) string {
		return StatefulSet(b, c, p).Spec.Template.Annotations[RollHashAnnotation]
	}
	base := roll(b, Params{DefaultImage: testImage, ClusterBootstrap: true})
	if base == "" {
		t.Fatal("no roll hash on a cluster's pod template")
	}
	if got := roll(b, Params{DefaultImage: testImage}); got != base {
		t.Error("dropping --cluster-bootstrap changes the roll hash: every member would restart once the cluster formed")
	}
	if got := roll(b, Params{DefaultImage: testImage, Members: 5}); got != base {
		t.Error("the member list changes the roll hash: scaling would restart every member")
	}
	if got := roll(b, Params{DefaultImage: "example.com/bollard:v2"}); got == base {
		t.Error("a new image does not change the roll hash")
	}
	one := loadBroker(t, "minimal")
	if _, ok := StatefulSet(one, mustConfig(t, one), Params{}).Spec.Template.Annotations[RollHashAnnotation]; ok {
		t.Error("a single node's pod template has a roll hash")
	}
}

func TestClusterServicesAndPolicies(t *testing.T) {
	b := clusterBroker(t, 3)
	has := func(ports []corev1.ServicePort) bool {
		return slices.ContainsFunc(ports, func(p corev1.ServicePort) bool { return p.Port == ReplicationPort })
	}
	if !has(HeadlessService(b).Spec.Ports) || !HeadlessService(b).Spec.PublishNotReadyAddresses {
		t.Errorf("headless Service %+v: want the replication port and not-ready addresses", HeadlessService(b).Spec)
	}
	if has(Service(b).Spec.Ports) {
		t.Error("the replication port is on the client Service")
	}
	one := loadBroker(t, "minimal")
	if has(HeadlessService(one).Spec.Ports) {
		t.Error("a single node's headless Service has the replication port")
	}
	np := NetworkPolicy(b, NetworkPolicyDefaults{})
	var found bool
	for _, r := range np.Spec.Ingress {
		for _, p := range r.Ports {
			if p.Port.IntVal == ReplicationPort {
				found = len(r.From) == 1 && r.From[0].PodSelector != nil && r.From[0].NamespaceSelector == nil
			}
		}
	}
	if !found {
		t.Errorf("NetworkPolicy does not admit the replication port from the members only: %+v", np.Spec.Ingress)
	}
	if pdb := PodDisruptionBudget(b); pdb.Spec.MaxUnavailable.IntVal != 1 {
		t.Errorf("PDB maxUnavailable = %v, want 1", pdb.Spec.MaxUnavailable)
	}
}

// TestValidateCluster: a cluster's configuration is checked by the
// broker's own rules as a member runs it.
func TestValidateCluster(t *testing.T) {
	b := clusterBroker(t, 3)
	b.Spec.Persistence.Durability = "none"
	_, err := BrokerConfig(b)
	if !errors.Is(err, ErrCluster) || !strings.Contains(err.Error(), "durability.mode") {
		t.Errorf("durability none in a cluster: %v, want the broker's durability.mode refusal", err)
	}
	b = clusterBroker(t, 3)
	b.Spec.Listeners.MQTT.Port = ReplicationPort
	if _, err := BrokerConfig(b); !errors.Is(err, ErrCluster) || !strings.Contains(err.Error(), "replication port") {
		t.Errorf("listener on the replication port: %v", err)
	}
	one := loadBroker(t, "minimal")
	one.Spec.Listeners.MQTT.Port = ReplicationPort
	if _, err := BrokerConfig(one); err != nil {
		t.Errorf("a single node may use port %d: %v", ReplicationPort, err)
	}
}

func TestMemberOrdinal(t *testing.T) {
	b := clusterBroker(t, 3)
	for name, want := range map[string]int{"cluster-0": 0, "cluster-4": 4, "cluster-01": -1, "cluster-": -1, "cluster-x": -1, "other-1": -1, "cluster--1": -1} {
		if got := MemberOrdinal(b, name); got != want {
			t.Errorf("MemberOrdinal(%q) = %d, want %d", name, got, want)
		}
	}
}

// TestAdoptingStatefulSet: while a single node becomes member 0, the
// StatefulSet holds member 0 alone, listed alone, bootstrapping, on the
// cluster's pod template (whose roll hash does not change when adopting
// ends, so member 0 is not restarted a second time).
func TestAdoptingStatefulSet(t *testing.T) {
	for _, n := range []int32{3, 5} {
		b := clusterBroker(t, n)
		c := mustConfig(t, b)
		adopt := StatefulSet(b, c, Params{DefaultImage: testImage, Adopting: true, ClusterBootstrap: true})
		ps := &adopt.Spec.Template.Spec
		if *adopt.Spec.Replicas != 1 || !RunsMember(ps) || ListedMembers(ps) != 1 || !slices.Contains(ps.Containers[0].Args, "--cluster-bootstrap") {
			t.Errorf("replicas %d: adopting StatefulSet has %d pods, members %d, args %q", n, *adopt.Spec.Replicas, ListedMembers(ps), ps.Containers[0].Args)
		}
		if adopt.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
			t.Errorf("adopting StatefulSet is %s", adopt.Spec.PodManagementPolicy)
		}
		formed := StatefulSet(b, c, Params{DefaultImage: testImage})
		if *formed.Spec.Replicas != n || ListedMembers(&formed.Spec.Template.Spec) != int(n) {
			t.Errorf("formed: %d pods, %d members, want %d", *formed.Spec.Replicas, ListedMembers(&formed.Spec.Template.Spec), n)
		}
		if a, f := adopt.Spec.Template.Annotations[RollHashAnnotation], formed.Spec.Template.Annotations[RollHashAnnotation]; a != f {
			t.Errorf("roll hash changes when adopting ends (%s -> %s): member 0 would restart again", a, f)
		}
	}
	one := clusterBroker(t, 1)
	if ps := StatefulSet(one, mustConfig(t, one), Params{DefaultImage: testImage}).Spec.Template.Spec; RunsMember(&ps) || ListedMembers(&ps) != 0 {
		t.Error("a single node's pod template runs a member")
	}
}
