package resources

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/broker/config"
)

// SpecHashAnnotation, on the StatefulSet, digests the spec the operator
// last wrote. The reconciler rewrites the spec when the digest of the
// desired spec differs (which also catches fields the spec stopped
// setting) or when a field the operator sets was changed by someone else.
const SpecHashAnnotation = "mqtt.bollard.io/spec-hash"

// TemplateHashAnnotation, on the StatefulSet, digests the pod template the
// operator last wrote: when it changes, the broker pods roll, and the
// reconciler records a Restarted event.
const TemplateHashAnnotation = "mqtt.bollard.io/template-hash"

// Broker pod identity: a fixed non-root user, also the volume's group.
const (
	brokerUID = 65532
	brokerGID = 65532
)

// Probe timings. The startup probe allows 30 minutes for a broker to
// recover a large store before liveness checks begin.
//
// The kubelet's first probe of a new container comes one period after it
// started (its probe worker ticks from the pod's admission), and the
// readiness probe's first check one readiness period after startup
// passed: with periods of 10 s and 5 s a broker that is ready in 20 ms
// turned Ready after ~11 s, and every pod of a roll paid it. The broker
// answers /healthz and /readyz from memory, so probing every second
// (startup) and every 2 s (readiness) costs nothing worth counting and
// makes a restarted pod Ready within ~1-3 s.
const (
	startupPeriod    = 1
	startupFailures  = 1800
	livenessPeriod   = 10
	livenessFailures = 6
	readinessPeriod  = 2
	readinessFailure = 2
	probeTimeout     = 5
)

// brokerContainerName names the broker's container.
const brokerContainerName = "broker"

// quantityOne divides limits.memory into bytes for GOMEMLIMIT.
var quantityOne = resource.MustParse("1")

// Params are the builder inputs that do not come from the MQTTBroker.
type Params struct {
	// DefaultImage is used when spec.image is empty.
	DefaultImage string
	// NetworkPolicy holds the operator-wide NetworkPolicy settings.
	NetworkPolicy NetworkPolicyDefaults
	// ClusterBootstrap adds --cluster-bootstrap to a cluster's members:
	// true while the cluster is being formed, false once it was (members
	// added later must not bootstrap a cluster of their own). The
	// reconciler decides (see clusterBootstrap there).
	ClusterBootstrap bool
	// Adopting: a single node's StatefulSet becomes a cluster (replicas
	// 1 -> 3 or 5). Until member 0 leads, the StatefulSet keeps one pod,
	// which lists itself as the only member and bootstraps: it adopts the
	// single node's store as the cluster's first state (the broker refuses
	// to adopt with other members listed, and members that bootstrapped
	// beside it would form a cluster without the store). The others are
	// added through the leader once it serves. The reconciler decides (see
	// adoptingSingle there).
	Adopting bool
	// Members is the number of pods of a cluster's StatefulSet when it
	// differs from spec.replicas: while members leave a shrinking cluster
	// through its leader, their pods stay. 0 means spec.replicas.
	Members int32
}

// ConfigHash digests everything a running broker cannot apply without a
// restart: the restart fields of the rendered configuration (as classified
// by broker/config). Hot fields (queue limits, expiry caps, users, ACLs,
// log level, the config generation) are left out, and so are the contents
// of the mounted Secrets: the broker reloads its TLS certificate and client
// CAs, its users file and its admin token when the kubelet updates the
// files, so a renewed certificate never rolls the pod.
func ConfigHash(c *config.Config) string {
	h := sha256.New()
	fmt.Fprintf(h, "config=%s\n", config.RestartHash(c))
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Image is the broker image b runs.
func Image(b *v1alpha1.MQTTBroker, p Params) string {
	if b.Spec.Image != "" {
		return b.Spec.Image
	}
	return p.DefaultImage
}

// StatefulSet runs the broker. c is the configuration rendered by
// BrokerConfig, whose restart fields go into the pod template's hash.
func StatefulSet(b *v1alpha1.MQTTBroker, c *config.Config, p Params) *appsv1.StatefulSet {
	reclaim := appsv1.RetainPersistentVolumeClaimRetentionPolicyType
	if b.Spec.Persistence.ReclaimPolicy == v1alpha1.ReclaimDelete {
		reclaim = appsv1.DeletePersistentVolumeClaimRetentionPolicyType
	}
	sts := &appsv1.StatefulSet{
		ObjectMeta: objectMeta(b, StatefulSetName(b)),
		Spec: appsv1.StatefulSetSpec{
			Replicas:             ptr.To(statefulSetReplicas(b, p)),
			Selector:             &metav1.LabelSelector{MatchLabels: SelectorLabels(b)},
			ServiceName:          HeadlessServiceName(b),
			PodManagementPolicy:  appsv1.OrderedReadyPodManagement,
			UpdateStrategy:       appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType},
			RevisionHistoryLimit: ptr.To(int32(10)),
			PersistentVolumeClaimRetentionPolicy: &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
				WhenDeleted: reclaim,
				WhenScaled:  appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
			},
			Template:             podTemplate(b, c, p),
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{volumeClaimTemplate(b)},
		},
	}
	if Clustered(b) {
		// Parallel: members start together (with OrderedReady, member 1
		// would wait for member 0 to be Ready, which a follower never is).
		// OnDelete: the operator rolls the members itself, followers
		// first, each caught up before the next, the leader last after
		// handing over leadership (controllers/roll.go).
		sts.Spec.PodManagementPolicy = appsv1.ParallelPodManagement
		sts.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}
		// A member's pod goes only once the member left the cluster
		// through its leader; its data is then of no use, and a stale
		// log would only confuse the member that reuses the claim when
		// the cluster grows again.
		sts.Spec.PersistentVolumeClaimRetentionPolicy.WhenScaled = appsv1.DeletePersistentVolumeClaimRetentionPolicyType
	}
	sts.Annotations = map[string]string{
		SpecHashAnnotation:     SpecHash(&sts.Spec),
		TemplateHashAnnotation: digest(&sts.Spec.Template),
	}
	return sts
}

// statefulSetReplicas is the number of pods: spec.replicas, or more while
// members leave a shrinking cluster.
func statefulSetReplicas(b *v1alpha1.MQTTBroker, p Params) int32 {
	if Clustered(b) && p.Adopting {
		return 1
	}
	if Clustered(b) && p.Members > Replicas(b) {
		return p.Members
	}
	return Replicas(b)
}

// SpecHash digests a StatefulSet spec except its volume claim templates,
// which the apiserver does not let anyone change (the reconciler expands
// claims directly instead).
func SpecHash(spec *appsv1.StatefulSetSpec) string {
	s := *spec
	s.VolumeClaimTemplates = nil
	return digest(&s)
}

// digest is a short hash of v's JSON form.
func digest(v any) string {
	b, err := json.Marshal(v)
	if err != nil { // typed API structs always marshal
		panic(fmt.Sprintf("resources: hashing %T: %v", v, err))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:16]
}

func podTemplate(b *v1alpha1.MQTTBroker, c *config.Config, p Params) corev1.PodTemplateSpec {
	image := Image(b, p)
	labels := podLabels(b, image)
	annotations := map[string]string{}
	maps.Copy(annotations, b.Spec.PodAnnotations)
	annotations[ConfigHashAnnotation] = ConfigHash(c)
	if v, ok := b.Annotations[v1alpha1.RestartedAtAnnotation]; ok {
		annotations[v1alpha1.RestartedAtAnnotation] = v
	}
	s := &b.Spec
	t := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: annotations},
		Spec: corev1.PodSpec{
			ServiceAccountName:            ServiceAccountName(b),
			AutomountServiceAccountToken:  ptr.To(false),
			EnableServiceLinks:            ptr.To(false),
			TerminationGracePeriodSeconds: ptr.To(ptr.Deref(s.TerminationGracePeriodSeconds, 60)),
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:        ptr.To(true),
				RunAsUser:           ptr.To(int64(brokerUID)),
				RunAsGroup:          ptr.To(int64(brokerGID)),
				FSGroup:             ptr.To(int64(brokerGID)),
				FSGroupChangePolicy: ptr.To(corev1.FSGroupChangeOnRootMismatch),
				SeccompProfile:      &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			ImagePullSecrets:          s.ImagePullSecrets,
			NodeSelector:              s.NodeSelector,
			Tolerations:               s.Tolerations,
			Affinity:                  s.Affinity,
			TopologySpreadConstraints: s.TopologySpreadConstraints,
			PriorityClassName:         s.PriorityClassName,
			Containers:                []corev1.Container{brokerContainer(b, image)},
			Volumes:                   volumes(b),
		},
	}
	if Clustered(b) {
		clusterPod(b, &t, p)
	}
	return t
}

func brokerContainer(b *v1alpha1.MQTTBroker, image string) corev1.Container {
	return corev1.Container{
		Name:                     brokerContainerName,
		Image:                    image,
		ImagePullPolicy:          b.Spec.ImagePullPolicy,
		Command:                  []string{ContainerBin},
		Args:                     []string{"--config", ConfigDir + "/" + ConfigFile},
		Ports:                    containerPorts(b),
		Env:                      containerEnv(b),
		Resources:                b.Spec.Resources,
		VolumeMounts:             volumeMounts(b),
		StartupProbe:             httpProbe("/healthz", startupPeriod, startupFailures),
		LivenessProbe:            httpProbe("/healthz", livenessPeriod, livenessFailures),
		ReadinessProbe:           httpProbe("/readyz", readinessPeriod, readinessFailure),
		TerminationMessagePath:   corev1.TerminationMessagePathDefault,
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: ptr.To(false),
			ReadOnlyRootFilesystem:   ptr.To(true),
			RunAsNonRoot:             ptr.To(true),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		},
	}
}

func containerPorts(b *v1alpha1.MQTTBroker) []corev1.ContainerPort {
	var out []corev1.ContainerPort
	for _, sp := range listenerPorts(b) {
		out = append(out, corev1.ContainerPort{Name: sp.Name, ContainerPort: sp.Port, Protocol: corev1.ProtocolTCP})
	}
	return append(out, corev1.ContainerPort{Name: PortAdmin, ContainerPort: v1alpha1.AdminPort, Protocol: corev1.ProtocolTCP})
}

func httpProbe(path string, period, failures int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Path: path, Port: intstr.FromString(PortAdmin), Scheme: corev1.URISchemeHTTP,
		}},
		TimeoutSeconds:   probeTimeout,
		PeriodSeconds:    period,
		SuccessThreshold: 1,
		FailureThreshold: failures,
	}
}

func volumeMounts(b *v1alpha1.MQTTBroker) []corev1.VolumeMount {
	m := []corev1.VolumeMount{
		{Name: "config", MountPath: ConfigDir, ReadOnly: true},
		{Name: DataVolume, MountPath: DataMountPath},
		{Name: "tmp", MountPath: TmpDir},
		{Name: "admin-token", MountPath: AdminTokenDir, ReadOnly: true},
	}
	if b.Spec.Auth.UsersSecretRef != nil {
		m = append(m, corev1.VolumeMount{Name: "users", MountPath: UsersDir, ReadOnly: true})
	}
	if b.Spec.Listeners.TLS != nil {
		m = append(m, corev1.VolumeMount{Name: "tls", MountPath: TLSDir, ReadOnly: true})
	}
	return append(m, extraMounts(b)...)
}

func volumes(b *v1alpha1.MQTTBroker) []corev1.Volume {
	v := []corev1.Volume{
		{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: ConfigMapName(b)},
			DefaultMode:          ptr.To(int32(0o444)),
		}}},
		{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
			SizeLimit: ptr.To(resource.MustParse("64Mi")),
		}}},
		secretVolume("admin-token", AdminTokenSecretName(b), AdminTokenKey),
	}
	if ref := b.Spec.Auth.UsersSecretRef; ref != nil {
		v = append(v, secretVolume("users", ref.Name, usersKey(ref)))
	}
	if t := b.Spec.Listeners.TLS; t != nil {
		keys := []string{corev1.TLSCertKey, corev1.TLSPrivateKeyKey}
		if t.RequireClientCert {
			keys = append(keys, TLSCAKey)
		}
		v = append(v, secretVolume("tls", TLSSecretName(b), keys...))
	}
	return append(v, extraVolumes(b)...)
}

// secretVolume mounts only the named keys, readable by the broker's group.
func secretVolume(name, secret string, keys ...string) corev1.Volume {
	items := make([]corev1.KeyToPath, 0, len(keys))
	for _, k := range keys {
		items = append(items, corev1.KeyToPath{Key: k, Path: k})
	}
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
		SecretName: secret, Items: items, DefaultMode: ptr.To(int32(0o440)),
	}}}
}

// volumeClaimTemplate is the data claim. Its labels hold no version: the
// template is immutable, so anything that changes across upgrades would
// make the StatefulSet impossible to update.
func volumeClaimTemplate(b *v1alpha1.MQTTBroker) corev1.PersistentVolumeClaim {
	p := b.Spec.Persistence
	return corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: DataVolume, Labels: Labels(b)},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: p.StorageClassName,
			VolumeMode:       ptr.To(corev1.PersistentVolumeFilesystem),
			Resources: corev1.VolumeResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceStorage: p.Size},
			},
		},
	}
}
