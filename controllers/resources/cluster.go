package resources

import (
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/controllers/members"
)

// A cluster (spec.replicas 3 or 5) is one StatefulSet whose pods are its
// members: the member ID is the pod's name, each member replicates on
// ReplicationPort, reached at its stable name under the headless Service.
//
// The cluster settings are flags of the broker container rather than a
// cluster section of the ConfigMap: the one ConfigMap serves every pod,
// the member ID differs per pod, and the broker validates its file before
// applying its flags, refusing a cluster section without a memberID. The
// pod's name and IP reach the flags through the downward API.

// ReplicationPort is the container port of the members' Raft traffic; it
// is published on the headless Service only, never on the client Service.
const ReplicationPort = 8081

// PortReplication names the replication port.
const PortReplication = "replication"

// ClusterSecretKey is the key of the shared secret in the cluster Secret.
const ClusterSecretKey = "secret"

// ClusterSecretDir and ClusterSecretFile are where the broker reads the
// cluster secret (cluster.secretFile).
const (
	ClusterSecretDir  = SecretsDir + "/cluster"
	ClusterSecretFile = ClusterSecretDir + "/" + ClusterSecretKey
)

// Environment variables the downward API fills for the cluster flags.
const (
	envPodName = "BOLLARD_POD_NAME"
	envPodIP   = "BOLLARD_POD_IP"
)

const clusterSecretVolume = "cluster-secret"

// clusterReadinessPeriod is how often a member's /readyz is probed.
const clusterReadinessPeriod = 1

// Clustered reports whether b runs as a replicated cluster.
func Clustered(b *v1alpha1.MQTTBroker) bool { return Replicas(b) > 1 }

// Replicas is spec.replicas with its default.
func Replicas(b *v1alpha1.MQTTBroker) int32 {
	if b.Spec.Replicas == nil {
		return 1
	}
	return *b.Spec.Replicas
}

// ClusterSecretName names the Secret holding the members' shared secret.
func ClusterSecretName(b *v1alpha1.MQTTBroker) string { return b.Name + "-cluster-secret" }

// ClusterSecret holds the secret the members prove to each other on every
// replication connection (HMAC-SHA256 challenge-response, see
// docs/durability.md). The reconciler generates it once, randomly, and
// never rewrites it: a member with another secret could not rejoin.
func ClusterSecret(b *v1alpha1.MQTTBroker, secret string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: objectMeta(b, ClusterSecretName(b)),
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{ClusterSecretKey: []byte(secret)},
	}
}

// MemberName is the pod name, and member ID, of the member with the given
// ordinal.
func MemberName(b *v1alpha1.MQTTBroker, ordinal int) string {
	return fmt.Sprintf("%s-%d", StatefulSetName(b), ordinal)
}

// MemberOrdinal is the ordinal of a member pod's name, or -1 when the name
// is not one of b's members.
func MemberOrdinal(b *v1alpha1.MQTTBroker, pod string) int {
	return members.Ordinal(StatefulSetName(b), pod)
}

// MemberHost is the stable DNS name of a member under the headless Service.
func MemberHost(b *v1alpha1.MQTTBroker, member string) string {
	return fmt.Sprintf("%s.%s.%s.svc", member, HeadlessServiceName(b), b.Namespace)
}

// ClusterMember is the member with the given ordinal as the broker names
// it: replication and client addresses at its stable DNS name.
func ClusterMember(b *v1alpha1.MQTTBroker, ordinal int) config.ClusterMember {
	name := MemberName(b, ordinal)
	host := MemberHost(b, name)
	m := config.ClusterMember{ID: name, RaftAddress: fmt.Sprintf("%s:%d", host, ReplicationPort)}
	if ports := listenerPorts(b); len(ports) > 0 {
		m.ClientAddress = fmt.Sprintf("%s:%d", host, ports[0].Port)
	}
	return m
}

// ClusterMembers are the members 0..n-1.
func ClusterMembers(b *v1alpha1.MQTTBroker, n int) []config.ClusterMember {
	out := make([]config.ClusterMember, 0, n)
	for i := range n {
		out = append(out, ClusterMember(b, i))
	}
	return out
}

// clusterArgs are the broker flags of a member: its ID and bind address
// from the downward API, the members, the secret, and --cluster-bootstrap
// while the cluster is being formed (Params.ClusterBootstrap).
// While adopting (Params.Adopting), member 0 is listed alone.
func clusterArgs(b *v1alpha1.MQTTBroker, p Params) []string {
	n := int(statefulSetReplicas(b, p))
	members := make([]string, 0, n)
	for _, m := range ClusterMembers(b, n) {
		members = append(members, m.ID+"="+m.RaftAddress+"="+m.ClientAddress)
	}
	args := []string{
		MemberIDFlag + "$(" + envPodName + ")",
		// Brackets: the pod IP may be IPv6; Go accepts them around IPv4.
		fmt.Sprintf("--cluster-bind=[$(%s)]:%d", envPodIP, ReplicationPort),
		"--cluster-members=" + strings.Join(members, ","),
		"--cluster-secret-file=" + ClusterSecretFile,
	}
	if p.ClusterBootstrap {
		args = append(args, "--cluster-bootstrap")
	}
	return args
}

// MemberIDFlag is the flag that makes a broker container a cluster
// member; a pod without it runs a single node.
const MemberIDFlag = "--cluster-member-id="

// RunsMember reports whether a pod spec runs a cluster member (rather
// than a single node).
func RunsMember(ps *corev1.PodSpec) bool {
	for _, c := range ps.Containers {
		for _, a := range c.Args {
			if strings.HasPrefix(a, MemberIDFlag) {
				return true
			}
		}
	}
	return false
}

// ListedMembers is how many members a pod spec's --cluster-members flag
// lists (0 without the flag).
func ListedMembers(ps *corev1.PodSpec) int {
	for _, c := range ps.Containers {
		for _, a := range c.Args {
			if v, ok := strings.CutPrefix(a, "--cluster-members="); ok {
				return len(strings.Split(v, ","))
			}
		}
	}
	return 0
}

// clusterEnv fills the flags' pod name and IP.
func clusterEnv() []corev1.EnvVar {
	field := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{
			FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: path},
		}}
	}
	return []corev1.EnvVar{field(envPodName, "metadata.name"), field(envPodIP, "status.podIP")}
}

// ErrCluster is wrapped by the errors of ValidateCluster.
var ErrCluster = errors.New("resources: invalid cluster settings")

// ValidateCluster checks the rendered configuration as each member of a
// cluster will run it: the file with the cluster flags applied, checked by
// the broker's own rules (config.Validate: a durability of none is
// refused, for example), and the listener ports against the replication
// port. Nil for a single node.
func ValidateCluster(b *v1alpha1.MQTTBroker, c *config.Config) error {
	if !Clustered(b) {
		if c.Cluster.HandoverHoldFor != 0 || c.Cluster.HandoverMaxHeld != 0 {
			return fmt.Errorf("%w: spec.config cluster.handoverHoldFor and cluster.handoverMaxHeld bound a cluster's leadership handover: they need replicas 3 or 5", ErrCluster)
		}
		return nil
	}
	var errs []error
	for _, sp := range listenerPorts(b) {
		if sp.Port == ReplicationPort {
			errs = append(errs, fmt.Errorf("spec.listeners: port %d is the members' replication port with replicas %d", ReplicationPort, Replicas(b)))
		}
	}
	// The file's cluster section (the tunables spec.config may set) with
	// what the member's flags add.
	member := *c
	cl := &member.Cluster
	cl.MemberID = MemberName(b, 0)
	cl.Bind = fmt.Sprintf("[127.0.0.1]:%d", ReplicationPort) // stands for the pod IP
	cl.Members = ClusterMembers(b, int(Replicas(b)))
	cl.SecretFile = ClusterSecretFile
	cl.Bootstrap = true
	if err := member.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("as a cluster member: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrCluster, err)
	}
	return nil
}

// RollHashAnnotation, on the pod template of a cluster's StatefulSet (and
// so on each member pod), digests what a member must restart to apply:
// the pod template without the membership flags (--cluster-members and
// --cluster-bootstrap), which change as the cluster scales or once it is
// formed without any member needing a restart (membership changes go
// through the leader). The operator rolls the members whose pod carries
// another value (controllers/roll.go).
const RollHashAnnotation = "mqtt.bollard.io/roll-hash"

// clusterPod adds a member's settings to the pod template: the flags, the
// downward API variables they use, the replication port, the cluster
// secret, and spreading the members over nodes unless the spec places
// the pods itself.
func clusterPod(b *v1alpha1.MQTTBroker, t *corev1.PodTemplateSpec, p Params) {
	ps := &t.Spec
	c := &ps.Containers[0]
	c.Args = append(c.Args, clusterArgs(b, p)...)
	// After GOMEMLIMIT, before the spec's own variables.
	c.Env = append(c.Env[:1:1], append(clusterEnv(), c.Env[1:]...)...)
	c.Ports = append(c.Ports, corev1.ContainerPort{Name: PortReplication, ContainerPort: ReplicationPort, Protocol: corev1.ProtocolTCP})
	c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: clusterSecretVolume, MountPath: ClusterSecretDir, ReadOnly: true})
	ps.Volumes = append(ps.Volumes, secretVolume(clusterSecretVolume, ClusterSecretName(b), ClusterSecretKey))
	if ps.Affinity == nil && len(ps.TopologySpreadConstraints) == 0 {
		ps.Affinity = spreadMembers(b)
	}
	// Readiness is the client Service's routing: after a leadership change
	// the old leader leaves the endpoints and the new one joins within a
	// second, not the single node's 2-4 s (clients refused by a follower
	// meanwhile are told where the leader is and retry).
	c.ReadinessProbe = httpProbe("/readyz", clusterReadinessPeriod, 1)
	t.Annotations[RollHashAnnotation] = rollHash(t)
}

// spreadMembers prefers one member per node: a node's loss then takes one
// member, which a cluster survives. Preferred, not required, so that a
// cluster still runs (less safely) on fewer nodes than members.
func spreadMembers(b *v1alpha1.MQTTBroker) *corev1.Affinity {
	return &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
		PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
			Weight: 100,
			PodAffinityTerm: corev1.PodAffinityTerm{
				LabelSelector: &metav1.LabelSelector{MatchLabels: SelectorLabels(b)},
				TopologyKey:   corev1.LabelHostname,
			},
		}},
	}}
}

// rollHash digests t without the membership flags and the roll hash.
func rollHash(t *corev1.PodTemplateSpec) string {
	c := t.DeepCopy()
	delete(c.Annotations, RollHashAnnotation)
	args := c.Spec.Containers[0].Args[:0]
	for _, a := range c.Spec.Containers[0].Args {
		if !strings.HasPrefix(a, "--cluster-members=") && a != "--cluster-bootstrap" {
			args = append(args, a)
		}
	}
	c.Spec.Containers[0].Args = args
	return digest(c)
}
