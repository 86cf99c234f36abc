package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// AdminPort is the container port of the broker's admin HTTP endpoint
// (/healthz, /readyz, /metrics, /v1/status). Listener ports may not use it.
const AdminPort = 8080

// MQTTBroker is a Bollard MQTT broker: a StatefulSet running the bollard
// broker with its sessions and queues on a PersistentVolumeClaim, Services
// for clients, and the broker configuration rendered from this spec. The
// operator owns what it sets on these objects: hand edits to those fields
// are put back (a DriftCorrected Event says which), while fields it leaves
// unset are left to the apiserver and to others.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=mqb,categories=bollard
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Leader",type=string,JSONPath=`.status.leader`
// +kubebuilder:printcolumn:name="Endpoint",type=string,JSONPath=`.status.endpoint`
// +kubebuilder:printcolumn:name="Sessions",type=integer,JSONPath=`.status.sessions`
// +kubebuilder:printcolumn:name="Queued",type=integer,JSONPath=`.status.queuedMessages`
// +kubebuilder:printcolumn:name="Store",type=string,JSONPath=`.status.stats.storage.usage`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 52",message="metadata.name must be at most 52 characters: it names the StatefulSet, whose pods and revisions add suffixes"
type MQTTBroker struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec describes the broker the operator runs.
	// +kubebuilder:default={}
	// +optional
	Spec MQTTBrokerSpec `json:"spec,omitzero"`

	// status is what the operator observed, written only by the operator.
	// +optional
	Status MQTTBrokerStatus `json:"status,omitzero"`
}

// MQTTBrokerList is a list of MQTTBroker.
//
// +kubebuilder:object:root=true
type MQTTBrokerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []MQTTBroker `json:"items"`
}

// MQTTBrokerSpec describes the broker the operator runs.
//
// +kubebuilder:validation:XValidation:rule="!has(self.volumeMounts) || self.volumeMounts.all(m, has(self.volumes) && self.volumes.exists(v, v.name == m.name))",message="every volumeMounts[].name must name a volume of spec.volumes"
// +kubebuilder:validation:XValidation:rule="!has(self.replicas) || self.replicas < 3 || !has(self.podDisruptionBudget) || !has(self.podDisruptionBudget.maxUnavailable) || self.podDisruptionBudget.maxUnavailable <= (self.replicas - 1) / 2",message="podDisruptionBudget.maxUnavailable must leave a majority of the cluster's members: at most 1 with replicas 3, 2 with replicas 5"
type MQTTBrokerSpec struct {
	// image is the container image holding the bollard binary. Default: the
	// image the operator was started with (its --broker-image flag), so
	// upgrading the operator upgrades brokers that do not pin one. Changing it
	// rolls the broker pod.
	// +kubebuilder:validation:MinLength=1
	// +optional
	Image string `json:"image,omitempty"`

	// imagePullPolicy is the pull policy of the broker container: Always,
	// IfNotPresent or Never. Default: Kubernetes' default for the image
	// (Always for :latest, IfNotPresent otherwise).
	// +kubebuilder:validation:Enum=Always;IfNotPresent;Never
	// +optional
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy,omitempty"`

	// imagePullSecrets name Secrets in this namespace used to pull image.
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	// +optional
	ImagePullSecrets []corev1.LocalObjectReference `json:"imagePullSecrets,omitempty"`

	// replicas is the number of broker pods: 1 (a single node, no
	// replication), 3 (a cluster that survives the loss of one member) or 5
	// (two). Each member of a cluster keeps the whole state on its own
	// volume and only the elected leader serves clients (docs/operations.md,
	// "Choosing 1, 3 or 5"). A cluster scales between 3 and 5 with its data.
	// Going from 1 to 3 or 5 keeps the data too: the single node restarts
	// once as the cluster's first member, adopting its store, and the
	// others join it (one restart of the single node: its clients
	// reconnect; docs/operations.md, "From one replica to a cluster").
	// Going from 3 or 5 to 1 is refused: a member's store cannot become a
	// single node's (docs/operations.md, "Going back to one replica").
	// Default 1.
	// +kubebuilder:default=1
	// +kubebuilder:validation:XValidation:rule="self == 1 || self == 3 || self == 5",message="replicas must be 1, 3 or 5: a cluster needs an odd number of members so that a majority survives the loss of one (3) or two (5)"
	// +kubebuilder:validation:XValidation:rule="oldSelf == 1 || self != 1",message="replicas cannot go from 3 or 5 down to 1: a cluster member's store cannot become a single node's; see docs/operations.md, \"Going back to one replica\""
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`

	// listeners are the client-facing endpoints: plain MQTT over TCP (on by
	// default, port 1883), MQTT over TLS and MQTT over WebSocket. Changing a
	// listener rolls the broker pod.
	// +kubebuilder:default={}
	// +optional
	Listeners Listeners `json:"listeners,omitzero"`

	// persistence is where sessions, queues, inflight and retained messages
	// are stored: a PersistentVolumeClaim per pod, mounted at /var/lib/bollard.
	// +kubebuilder:default={}
	// +optional
	Persistence Persistence `json:"persistence,omitzero"`

	// sessions caps session lifetimes. Hot: changing it updates the broker
	// configuration without a restart.
	// +kubebuilder:default={}
	// +optional
	Sessions Sessions `json:"sessions,omitzero"`

	// queues bounds the offline queue of every persistent session. Hot:
	// changing it updates the broker configuration without a restart.
	// +kubebuilder:default={}
	// +optional
	Queues Queues `json:"queues,omitzero"`

	// limits protect the broker from abusive or broken clients. Hot:
	// changing them updates the broker configuration without a restart.
	// +kubebuilder:default={}
	// +optional
	Limits Limits `json:"limits,omitzero"`

	// auth configures client authentication and topic ACLs. Hot: users and
	// ACL changes apply without a restart.
	// +kubebuilder:default={}
	// +optional
	Auth Auth `json:"auth,omitzero"`

	// logLevel is the broker's log level: debug, info, warn or error.
	// Default info. Hot: changing it does not restart the broker.
	// +kubebuilder:validation:Enum=debug;info;warn;error
	// +kubebuilder:default=info
	// +optional
	LogLevel string `json:"logLevel,omitempty"`

	// resources are the compute requests and limits of the broker container.
	// Set a memory request: the broker bounds its queues in memory and
	// streams the rest from disk. With a memory limit, the broker's soft Go
	// memory limit (limits.memoryLimit) is set to 80% of it, so the garbage
	// collector returns memory long before the OOM killer would act.
	// Changing them rolls the broker pod.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitzero"`

	// nodeSelector constrains the broker pod to nodes with these labels.
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`

	// tolerations let the broker pod schedule onto tainted nodes.
	// +listType=atomic
	// +optional
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`

	// affinity holds the pod's scheduling constraints.
	// +optional
	Affinity *corev1.Affinity `json:"affinity,omitempty"`

	// priorityClassName is the PriorityClass of the broker pod. A broker that
	// holds persistent sessions usually deserves a high one.
	// +optional
	PriorityClassName string `json:"priorityClassName,omitempty"`

	// podAnnotations are added to the broker pod (for example for a metrics
	// scraper). Keys under mqtt.bollard.io/ are reserved for the operator.
	// Changing them rolls the broker pod.
	// +kubebuilder:validation:XValidation:rule="self.all(k, !k.startsWith('mqtt.bollard.io/'))",message="podAnnotations keys under mqtt.bollard.io/ are reserved for the operator"
	// +optional
	PodAnnotations map[string]string `json:"podAnnotations,omitempty"`

	// podLabels are added to the broker pod (for example for a service mesh
	// or a cost report). The operator's own labels (app.kubernetes.io/name,
	// instance, component, managed-by, part-of and version) select the
	// pods and cannot be set here. Changing them rolls the broker pod.
	// +kubebuilder:validation:MaxProperties=64
	// +kubebuilder:validation:XValidation:rule="self.all(k, !(k in ['app.kubernetes.io/name', 'app.kubernetes.io/instance', 'app.kubernetes.io/component', 'app.kubernetes.io/managed-by', 'app.kubernetes.io/part-of', 'app.kubernetes.io/version']))",message="podLabels cannot set the operator's labels (app.kubernetes.io/name, instance, component, managed-by, part-of, version): they select the broker's pods"
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.size() <= 316 && k.matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$'))",message="podLabels keys must be label keys: an optional DNS subdomain prefix and '/', then at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
	// +optional
	PodLabels map[string]LabelValue `json:"podLabels,omitempty"`

	// topologySpreadConstraints spread the broker pods across zones or
	// nodes (Kubernetes' own field, copied onto the pod). Select the broker
	// pods with the labels app.kubernetes.io/name=bollard and
	// app.kubernetes.io/instance=<name>. Changing them rolls the broker pod.
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=8
	// +optional
	TopologySpreadConstraints []corev1.TopologySpreadConstraint `json:"topologySpreadConstraints,omitempty"`

	// env adds environment variables to the broker container, after the
	// operator's own (GOMEMLIMIT, which cannot be set here: the operator
	// derives it from resources.limits.memory). Values may come from
	// Secrets and ConfigMaps (valueFrom). The broker reads its settings
	// from its configuration file, not from the environment: use spec.config
	// for a broker setting the CRD does not expose. Changing env rolls the
	// broker pod.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:XValidation:rule="self.all(e, e.name != 'GOMEMLIMIT')",message="env cannot set GOMEMLIMIT: the operator sets it from resources.limits.memory"
	// +optional
	Env []corev1.EnvVar `json:"env,omitempty"`

	// volumes adds volumes to the broker pod, for volumeMounts to mount
	// (for example a CA bundle, or a directory from a CSI secrets driver).
	// Each has a name and one source: configMap, secret, emptyDir,
	// persistentVolumeClaim, csi or projected, as in a Pod. Other sources
	// are not offered: hostPath would let whoever may edit an MQTTBroker
	// reach the node's files through the operator. The operator's own
	// volume names (config, data, tmp, admin-token, users, tls) cannot be
	// used, nor cluster-secret. Changing volumes rolls the broker pod.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:rule="self.all(v, !(v.name in ['config', 'data', 'tmp', 'admin-token', 'users', 'tls', 'cluster-secret']))",message="volumes cannot use the operator's volume names: config, data, tmp, admin-token, users, tls, cluster-secret"
	// +optional
	Volumes []Volume `json:"volumes,omitempty"`

	// volumeMounts mounts volumes of spec.volumes into the broker
	// container. The operator's own paths are refused, and so is any path
	// above or below them: /etc/bollard (the configuration),
	// /var/lib/bollard (the data volume), /var/run/bollard (the admin
	// token, users and TLS Secrets) and /tmp. Paths must be absolute and
	// clean (no "." or ".." parts, no trailing '/'). Changing them rolls
	// the broker pod.
	// +listType=map
	// +listMapKey=mountPath
	// +kubebuilder:validation:MaxItems=16
	// +optional
	VolumeMounts []VolumeMount `json:"volumeMounts,omitempty"`

	// service configures the client Service (named after the MQTTBroker).
	// +kubebuilder:default={}
	// +optional
	Service ServiceSpec `json:"service,omitzero"`

	// podDisruptionBudget configures the PodDisruptionBudget that guards the
	// broker pod against voluntary evictions (node drains).
	// +kubebuilder:default={}
	// +optional
	PodDisruptionBudget PodDisruptionBudgetSpec `json:"podDisruptionBudget,omitzero"`

	// metrics configures how Prometheus scrapes the broker's /metrics
	// endpoint (connections, sessions, queued messages and bytes, drops by
	// reason, store use, commit and fsync latency, applied config
	// generation): a metrics Service and, for the Prometheus Operator, an
	// optional ServiceMonitor and PrometheusRule (Bollard's alerts).
	// +kubebuilder:default={}
	// +optional
	Metrics Metrics `json:"metrics,omitzero"`

	// networkPolicy restricts who may reach the broker pods with a
	// NetworkPolicy named after the MQTTBroker: the MQTT listener ports
	// (mqtt, TLS, WebSocket) from anywhere, the admin port (8080: the /v1
	// admin API, /metrics and the probes) only from the operator's namespace
	// and from Prometheus. Enabled by default. It takes effect only where the
	// cluster's network plugin enforces NetworkPolicies; the admin API
	// requires its token either way.
	// +kubebuilder:default={}
	// +optional
	NetworkPolicy NetworkPolicySpec `json:"networkPolicy,omitzero"`

	// terminationGracePeriodSeconds is how long Kubernetes waits after
	// SIGTERM before killing the broker. The operator sets the broker's drain
	// timeout to this value minus 10 seconds, so that in-flight commits
	// finish and the store is flushed and closed before the kill. Default 60,
	// between 15 and 3600.
	// +kubebuilder:default=60
	// +kubebuilder:validation:Minimum=15
	// +kubebuilder:validation:Maximum=3600
	// +optional
	TerminationGracePeriodSeconds *int64 `json:"terminationGracePeriodSeconds,omitempty"`

	// config sets broker configuration fields this resource does not
	// expose, as an object in the broker's own file format
	// (docs/reference/broker-config.md): for example limits.connectTimeout,
	// limits.maxClientIDLength or sessions.allowTakeoverByOtherPrincipal,
	// written as nested objects (limits: connectTimeout: 5s). It is merged over the configuration the operator renders from
	// this spec (objects merge field by field; any other value replaces)
	// and the result is checked by the broker's own loader (unknown fields
	// and invalid values are refused). A field this resource does expose
	// (spec.queues, spec.limits.maxConnections, spec.listeners, ...), or one
	// the operator manages (admin, dataDir, configGeneration), is refused
	// rather than overridden, naming the field to set instead: one value,
	// one place. A refused config is reported (Degraded and ConfigApplied
	// False, reason InvalidConfig, with the loader's message) and not
	// rendered: the broker keeps its previous configuration. Hot or
	// restart as each field is in the broker (restart fields roll the pod).
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Type=object
	// +kubebuilder:validation:MaxProperties=32
	// +optional
	Config *runtime.RawExtension `json:"config,omitempty"`
}

// Volume is a volume of the broker pod: a name and exactly one source.
//
// +kubebuilder:validation:XValidation:rule="[has(self.configMap), has(self.secret), has(self.emptyDir), has(self.persistentVolumeClaim), has(self.csi), has(self.projected)].filter(x, x).size() == 1",message="a volume needs exactly one source: configMap, secret, emptyDir, persistentVolumeClaim, csi or projected"
type Volume struct {
	// name of the volume, which volumeMounts refer to: a DNS label.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]+(-+[a-z0-9]+)*$`
	// +required
	Name string `json:"name"`

	// configMap mounts a ConfigMap of this namespace.
	// +optional
	ConfigMap *corev1.ConfigMapVolumeSource `json:"configMap,omitempty"`

	// secret mounts a Secret of this namespace.
	// +optional
	Secret *corev1.SecretVolumeSource `json:"secret,omitempty"`

	// emptyDir is a scratch directory that lives as long as the pod.
	// +optional
	EmptyDir *corev1.EmptyDirVolumeSource `json:"emptyDir,omitempty"`

	// persistentVolumeClaim mounts an existing claim of this namespace.
	// +optional
	PersistentVolumeClaim *corev1.PersistentVolumeClaimVolumeSource `json:"persistentVolumeClaim,omitempty"`

	// csi mounts a volume of a CSI driver (for example the Secrets Store
	// CSI driver).
	// +optional
	CSI *corev1.CSIVolumeSource `json:"csi,omitempty"`

	// projected combines ConfigMaps, Secrets, the downward API and
	// service account tokens in one directory.
	// +optional
	Projected *corev1.ProjectedVolumeSource `json:"projected,omitempty"`
}

// LabelValue is the value of a Kubernetes label.
//
// +kubebuilder:validation:MaxLength=63
// +kubebuilder:validation:Pattern=`^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$`
type LabelValue string

// VolumeMount mounts a volume of spec.volumes into the broker container.
//
// +kubebuilder:validation:XValidation:rule="self.mountPath.matches('^(/[^/]+)+$') && !self.mountPath.matches('/[.][.]?(/|$)')",message="mountPath must be an absolute, clean path: no '.' or '..' parts, no '//' and no trailing '/'"
// +kubebuilder:validation:XValidation:rule="['/etc/bollard', '/var/lib/bollard', '/var/run/bollard', '/tmp'].all(r, self.mountPath != r && !self.mountPath.startsWith(r + '/') && !r.startsWith(self.mountPath + '/'))",message="mountPath cannot be at, inside or above the operator's paths: /etc/bollard (configuration), /var/lib/bollard (data), /var/run/bollard (admin token, users, TLS) and /tmp"
type VolumeMount struct {
	// name of a volume of spec.volumes.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +required
	Name string `json:"name"`

	// mountPath is where the volume appears in the container: an absolute
	// path outside the operator's own directories.
	// +kubebuilder:validation:MinLength=2
	// +kubebuilder:validation:MaxLength=1024
	// +required
	MountPath string `json:"mountPath"`

	// readOnly mounts the volume read-only. Default false.
	// +optional
	ReadOnly bool `json:"readOnly,omitempty"`

	// subPath mounts this path inside the volume instead of its root. The
	// kubelet never refreshes a subPath mount when a ConfigMap or Secret
	// changes.
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('/') && !self.matches('(^|/)[.][.](/|$)')",message="subPath must be a relative path without '..'"
	// +optional
	SubPath string `json:"subPath,omitempty"`
}

// Listeners are the client-facing endpoints of the broker. At least one must
// be enabled, and each needs its own port.
//
// +kubebuilder:validation:XValidation:rule="(!has(self.mqtt) || !has(self.mqtt.enabled) || self.mqtt.enabled) || has(self.tls) || has(self.websocket)",message="at least one listener must be enabled: listeners.mqtt.enabled, listeners.tls or listeners.websocket"
// +kubebuilder:validation:XValidation:rule="!has(self.tls) || !has(self.tls.port) || !has(self.mqtt) || !has(self.mqtt.port) || !(!has(self.mqtt) || !has(self.mqtt.enabled) || self.mqtt.enabled) || self.tls.port != self.mqtt.port",message="listeners.tls.port must differ from listeners.mqtt.port"
// +kubebuilder:validation:XValidation:rule="!has(self.websocket) || !has(self.websocket.port) || !has(self.mqtt) || !has(self.mqtt.port) || !(!has(self.mqtt) || !has(self.mqtt.enabled) || self.mqtt.enabled) || self.websocket.port != self.mqtt.port",message="listeners.websocket.port must differ from listeners.mqtt.port"
// +kubebuilder:validation:XValidation:rule="!has(self.websocket) || !has(self.tls) || !has(self.websocket.port) || !has(self.tls.port) || self.websocket.port != self.tls.port",message="listeners.websocket.port must differ from listeners.tls.port"
type Listeners struct {
	// mqtt is plain MQTT over TCP. Enabled by default on port 1883.
	// +kubebuilder:default={}
	// +optional
	MQTT MQTTListener `json:"mqtt,omitzero"`

	// tls is MQTT over TLS. Absent means disabled. A renewed certificate
	// in its Secret applies without a restart: the broker reloads the
	// mounted files when the kubelet updates them, and the pod template
	// holds the Secret's name, never its content.
	// +optional
	TLS *TLSListener `json:"tls,omitempty"`

	// websocket is MQTT over WebSocket (subprotocol "mqtt"). Absent means
	// disabled.
	// +optional
	WebSocket *WebSocketListener `json:"websocket,omitempty"`
}

// ListenerPort is a TCP port of a listener; 8080 belongs to the admin
// endpoint.
//
// +kubebuilder:validation:Minimum=1
// +kubebuilder:validation:Maximum=65535
// +kubebuilder:validation:XValidation:rule="self != 8080",message="port 8080 is reserved for the broker's admin endpoint"
type ListenerPort int32

// MQTTListener is plain MQTT over TCP.
type MQTTListener struct {
	// enabled turns the plain TCP listener on. Default true. Turn it off to
	// accept only TLS or WebSocket clients.
	// +kubebuilder:default=true
	// +optional
	Enabled *bool `json:"enabled,omitempty"`

	// port is the container and Service port. Default 1883.
	// +kubebuilder:default=1883
	// +optional
	Port ListenerPort `json:"port,omitempty"`
}

// TLSListener is MQTT over TLS.
//
// +kubebuilder:validation:XValidation:rule="has(self.secretName) || has(self.issuerRef)",message="listeners.tls needs secretName (a kubernetes.io/tls Secret) or issuerRef (a cert-manager issuer)"
// +kubebuilder:validation:XValidation:rule="!has(self.dnsNames) || size(self.dnsNames) == 0 || has(self.issuerRef)",message="listeners.tls.dnsNames is only used with listeners.tls.issuerRef"
type TLSListener struct {
	// port is the container and Service port. Default 8883.
	// +kubebuilder:default=8883
	// +optional
	Port ListenerPort `json:"port,omitempty"`

	// secretName names a kubernetes.io/tls Secret in this namespace holding
	// tls.crt and tls.key (and ca.crt when requireClientCert is true). The
	// pod does not start until it exists. Required unless issuerRef is set;
	// with issuerRef it defaults to <name>-tls, the Secret cert-manager
	// writes the certificate into.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +optional
	SecretName string `json:"secretName,omitempty"`

	// issuerRef asks cert-manager for the certificate: the operator creates
	// a cert-manager Certificate named <name>-tls, issued by this Issuer or
	// ClusterIssuer into the Secret secretName, for the DNS names of the
	// client Service and of every broker pod behind the headless Service
	// (plus dnsNames). cert-manager renews it before it expires and the
	// broker reloads the renewed files without a restart. It needs
	// cert-manager's Certificate CRD (cert-manager.io/v1): while that is not
	// installed the operator creates nothing, sets Degraded with reason
	// CertManagerUnavailable and records a warning Event, and creates the
	// Certificate once the CRD appears. Removing issuerRef deletes the
	// Certificate (cert-manager leaves its Secret in place).
	// +optional
	IssuerRef *IssuerRef `json:"issuerRef,omitempty"`

	// dnsNames are further DNS names for the certificate cert-manager issues
	// (for example the load balancer's public name). Only with issuerRef.
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +optional
	DNSNames []string `json:"dnsNames,omitempty"`

	// requireClientCert refuses clients that do not present a certificate
	// signed by the ca.crt of the Secret. Default false.
	// +optional
	RequireClientCert bool `json:"requireClientCert,omitempty"`
}

// Issuer kinds of cert-manager.
const (
	IssuerKindIssuer        = "Issuer"
	IssuerKindClusterIssuer = "ClusterIssuer"
)

// IssuerRef names a cert-manager issuer.
//
// +kubebuilder:validation:XValidation:rule="!has(self.group) || self.group != 'cert-manager.io' || !has(self.kind) || self.kind in ['Issuer', 'ClusterIssuer']",message="listeners.tls.issuerRef.kind must be Issuer or ClusterIssuer for the cert-manager.io group"
type IssuerRef struct {
	// name of the Issuer (in this namespace) or ClusterIssuer.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`

	// kind is Issuer (default) or ClusterIssuer. An issuer of another
	// group (an external issuer) may have another kind: set group too.
	// +kubebuilder:default=Issuer
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +optional
	Kind string `json:"kind,omitempty"`

	// group is the issuer's API group. Default cert-manager.io; external
	// issuers have their own (for example awspca.cert-manager.io).
	// +kubebuilder:default="cert-manager.io"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Group string `json:"group,omitempty"`
}

// WebSocketListener is MQTT over WebSocket.
type WebSocketListener struct {
	// port is the container and Service port. Default 8083.
	// +kubebuilder:default=8083
	// +optional
	Port ListenerPort `json:"port,omitempty"`

	// path is the HTTP path of the WebSocket endpoint. Default /mqtt.
	// +kubebuilder:default="/mqtt"
	// +kubebuilder:validation:Pattern=`^/[A-Za-z0-9._~!$&'()*+,;=:@/%-]*$`
	// +kubebuilder:validation:MaxLength=256
	// +optional
	Path string `json:"path,omitempty"`
}

// Durability modes of persistence.durability.
const (
	DurabilitySync     = "sync"
	DurabilityInterval = "interval"
	DurabilityNone     = "none"
)

// Reclaim policies of persistence.reclaimPolicy.
const (
	ReclaimRetain = "Retain"
	ReclaimDelete = "Delete"
)

// Persistence is where the broker keeps its state.
//
// +kubebuilder:validation:XValidation:rule="has(self.storageClassName) == has(oldSelf.storageClassName) && (!has(self.storageClassName) || self.storageClassName == oldSelf.storageClassName)",message="persistence.storageClassName cannot be changed after creation: the volume claim template is immutable"
// +kubebuilder:validation:XValidation:rule="!has(self.syncInterval) || (has(self.durability) && self.durability == 'interval')",message="persistence.syncInterval is only used with durability: interval"
type Persistence struct {
	// storageClassName is the StorageClass of the data volume. Default: the
	// cluster's default StorageClass. Immutable. Growing size later needs a
	// class with allowVolumeExpansion: true.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	StorageClassName *string `json:"storageClassName,omitempty"`

	// size is the capacity of the data volume. Default 1Gi. It may grow (the
	// operator expands the existing claim) but never shrink. The broker's
	// global store budget (queues.maxStoreBytes in its config) is set to 90%
	// of it, so a full volume drops new offline messages by the overflow
	// policy instead of crashing the store.
	// +kubebuilder:default="1Gi"
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).compareTo(quantity('64Mi')) >= 0",message="persistence.size must be at least 64Mi"
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).compareTo(quantity(string(oldSelf))) >= 0",message="persistence.size may grow but never shrink: volumes cannot be shrunk"
	// +optional
	Size resource.Quantity `json:"size,omitzero"`

	// durability selects when an acknowledged QoS 1/2 message reaches the
	// disk: sync (default: PUBACK/PUBREC only after fsync, group-committed),
	// interval (fsync every syncInterval: a crash may lose the last
	// interval) or none (memory only: nothing survives a restart). Changing
	// it rolls the broker pod.
	// +kubebuilder:validation:Enum=sync;interval;none
	// +kubebuilder:default=sync
	// +optional
	Durability string `json:"durability,omitempty"`

	// syncInterval is the fsync period with durability: interval, i.e. the
	// window of acknowledged messages a crash may lose. Default 50ms.
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1ms') && duration(self) <= duration('10s')",message="persistence.syncInterval must be between 1ms and 10s"
	// +optional
	SyncInterval *metav1.Duration `json:"syncInterval,omitempty"`

	// earlyDelivery lets a QoS 1 message go out to an online persistent
	// subscriber while its publish is still on its way to the disk (in a
	// cluster, to a majority of the members); the publisher's PUBACK still
	// waits for it. Default true. false: a subscriber receives only
	// messages already stored, at the price of one fsync (or replication
	// round) on each delivery's latency, and a crash can no longer leave a
	// subscriber with a message that was never stored. Applied without a
	// restart.
	// +optional
	EarlyDelivery *bool `json:"earlyDelivery,omitempty"`

	// reclaimPolicy says what happens to the data volume when the MQTTBroker
	// is deleted: Retain (default: the claim and its sessions stay, and a new
	// MQTTBroker of the same name picks them up) or Delete.
	// +kubebuilder:validation:Enum=Retain;Delete
	// +kubebuilder:default=Retain
	// +optional
	ReclaimPolicy string `json:"reclaimPolicy,omitempty"`
}

// Sessions caps session lifetimes.
//
// +kubebuilder:validation:XValidation:rule="!has(self.defaultSessionExpiry) || !has(self.maxSessionExpiry) || duration(self.defaultSessionExpiry) <= duration(self.maxSessionExpiry)",message="sessions.defaultSessionExpiry must not exceed sessions.maxSessionExpiry"
type Sessions struct {
	// maxSessionExpiry caps the session expiry interval an MQTT 5.0 client
	// may ask for; the granted value is returned in CONNACK. Whole seconds,
	// at most 4294967294s. Default 168h (7 days).
	// +kubebuilder:default="168h"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s') && duration(self) <= duration('4294967294s')",message="sessions.maxSessionExpiry must be between 0s and 4294967294s"
	// +optional
	MaxSessionExpiry metav1.Duration `json:"maxSessionExpiry,omitzero"`

	// defaultSessionExpiry is the expiry of an MQTT 3.1.1 persistent session
	// (cleanSession=0), which has none of its own in the protocol: such a
	// session and its queue are deleted after this long offline. Whole
	// seconds, at least 1s. Default 24h.
	// +kubebuilder:default="24h"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="sessions.defaultSessionExpiry must be at least 1s"
	// +optional
	DefaultSessionExpiry metav1.Duration `json:"defaultSessionExpiry,omitzero"`

	// maxSessions caps the sessions the broker holds, online and offline
	// persistent ones together; 0 means no limit. Default (unset): the
	// broker's, 100000. A CONNECT that would create one more session is
	// refused (MQTT 5.0: CONNACK 0x97 Quota exceeded; 3.1.1: 0x03 Server
	// unavailable) and counted; resuming an existing session is always
	// allowed, and sessions recovered at start are kept even above it.
	// +kubebuilder:validation:Minimum=0
	// +optional
	MaxSessions *int32 `json:"maxSessions,omitempty"`

	// maxSessionsPerPrincipal caps the sessions of one principal (a
	// username; all anonymous clients together count as one), refused as
	// for maxSessions; 0 means no limit. Default (unset): the broker's,
	// 10000. It keeps one leaked or abused credential from taking the whole
	// of maxSessions.
	// +kubebuilder:validation:Minimum=0
	// +optional
	MaxSessionsPerPrincipal *int32 `json:"maxSessionsPerPrincipal,omitempty"`
}

// Overflow policies of queues.overflowPolicy.
const (
	OverflowDropOldest    = "DropOldest"
	OverflowDropNewest    = "DropNewest"
	OverflowRejectPublish = "RejectPublish"
)

// Queues bounds the offline queue of every persistent session.
type Queues struct {
	// maxQueuedMessages is the most messages one session may have queued.
	// Default 10000, between 1 and 100000000.
	// +kubebuilder:default=10000
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000000
	// +optional
	MaxQueuedMessages int64 `json:"maxQueuedMessages,omitempty"`

	// maxQueuedBytes is the most topic+payload bytes one session may have
	// queued. Default 16Mi, at least 1Ki.
	// +kubebuilder:default="16Mi"
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).compareTo(quantity('1Ki')) >= 0",message="queues.maxQueuedBytes must be at least 1Ki"
	// +optional
	MaxQueuedBytes resource.Quantity `json:"maxQueuedBytes,omitzero"`

	// overflowPolicy says what happens to a message for a session whose
	// queue is full: DropOldest (default: drop the oldest queued message),
	// DropNewest (drop the new message) or RejectPublish (MQTT 5.0
	// publishers get reason code 0x97 Quota exceeded; for 3.1.1 publishers
	// the message is dropped for that session). Every drop is counted.
	// +kubebuilder:validation:Enum=DropOldest;DropNewest;RejectPublish
	// +kubebuilder:default=DropOldest
	// +optional
	OverflowPolicy string `json:"overflowPolicy,omitempty"`

	// queueQoS0 also queues QoS 0 messages for offline sessions. Default
	// false, as the MQTT specification suggests.
	// +optional
	QueueQoS0 bool `json:"queueQoS0,omitempty"`

	// minVolumeFreeBytes is a reserve of free space on the data volume:
	// below it, new messages for offline sessions are refused by
	// overflowPolicy as at the store budget (90% of persistence.size),
	// whatever that budget says, since the volume may be shared or smaller
	// than the claim asked. 0 disables the reserve. Default (unset): the
	// broker's, 64Mi.
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).compareTo(quantity('0')) >= 0",message="queues.minVolumeFreeBytes must not be negative"
	// +optional
	MinVolumeFreeBytes *resource.Quantity `json:"minVolumeFreeBytes,omitempty"`

	// policies give classes of devices their own queue settings: sensors
	// that keep their last few hundred readings, actuators that never lose
	// a command, firmware channels with large byte budgets. A session takes
	// the first policy that selects it (by clientID, principal and/or
	// topicFilter); every field the policy leaves unset keeps the value
	// above (sessions.maxSessionExpiry for maxSessionExpiry), and sessions
	// matching no policy keep the values above. Order matters: first match
	// wins. At most 32, names unique. Hot: a change applies to existing
	// sessions without a restart; a session whose subscriptions change is
	// matched again. The broker checks each policy once more (one
	// definition, broker/config); a policy it refuses is reported with
	// reason InvalidConfig and not applied. See docs/operations.md, "Queue
	// policies".
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:XValidation:rule="self.all(p, self.exists_one(q, q.name == p.name))",message="queues.policies: every policy needs a name of its own"
	// +optional
	Policies []QueuePolicy `json:"policies,omitempty"`
}

// QueuePolicy gives the sessions it selects their own queue settings. It
// selects a session when every selector it sets matches, and must set at
// least one. Patterns (clientID, principal) match the whole value: '*'
// matches any run of characters (none included), every other character
// only itself; ? [ ] and \ are reserved.
//
// +kubebuilder:validation:XValidation:rule="has(self.clientID) || has(self.principal) || has(self.topicFilter)",message="a queue policy must select sessions by at least one of clientID, principal or topicFilter"
type QueuePolicy struct {
	// name identifies the policy in metrics (label policy) and in the
	// broker's admin API (/v1/sessions): a lowercase DNS label, not
	// "default" (which names the sessions that match no policy).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="name must be a lowercase DNS label: a-z, 0-9 and '-' inside"
	// +kubebuilder:validation:XValidation:rule="self != 'default'",message="name \"default\" is reserved for sessions that match no policy"
	// +required
	Name string `json:"name"`

	// clientID is a pattern of client identifiers, for example "sensor-*".
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:XValidation:rule="!self.contains('?') && !self.contains('[') && !self.contains(']') && !self.contains('\\\\')",message="clientID: only '*' is a wildcard; ? [ ] and \\ are reserved"
	// +kubebuilder:validation:XValidation:rule="!self.matches('[\\x00-\\x1f\\x7f]')",message="clientID must not contain control characters"
	// +optional
	ClientID string `json:"clientID,omitempty"`

	// principal is a pattern of usernames (the authenticated principal
	// that created the session), for example "act-*". Sessions of
	// anonymous clients have no principal: no pattern selects them.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:XValidation:rule="!self.contains('?') && !self.contains('[') && !self.contains(']') && !self.contains('\\\\')",message="principal: only '*' is a wildcard; ? [ ] and \\ are reserved"
	// +kubebuilder:validation:XValidation:rule="!self.matches('[\\x00-\\x1f\\x7f]')",message="principal must not contain control characters"
	// +optional
	Principal string `json:"principal,omitempty"`

	// topicFilter selects sessions with at least one subscription inside
	// it: every topic that subscription can match is matched by
	// topicFilter too ("fw/#" selects a session subscribed to "fw/+/img"
	// or "fw/dev1", not one subscribed to "#"). A shared subscription is
	// matched by its inner filter. The session is matched again whenever
	// its subscriptions change.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:XValidation:rule="self == '#' || self.matches('^([^+#/]*|[+])(/([^+#/]*|[+]))*(/#)?$')",message="topicFilter must be an MQTT topic filter: '+' fills a whole level, '#' only the last level"
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('$share/')",message="topicFilter: give the inner filter; a shared subscription is matched by its inner filter"
	// +kubebuilder:validation:XValidation:rule="!self.contains('\\u0000')",message="topicFilter must not contain a NUL character"
	// +optional
	TopicFilter string `json:"topicFilter,omitempty"`

	// maxQueuedMessages replaces queues.maxQueuedMessages for these
	// sessions, between 1 and 100000000.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000000
	// +optional
	MaxQueuedMessages *int64 `json:"maxQueuedMessages,omitempty"`

	// maxQueuedBytes replaces queues.maxQueuedBytes for these sessions.
	// The broker needs at least 1 byte; a value it refuses is reported
	// with reason InvalidConfig and not applied. (A CEL bound on a
	// quantity inside this list costs more than the apiserver's budget
	// for one rule allows, so the broker's rule is the only one here.)
	// +optional
	MaxQueuedBytes *resource.Quantity `json:"maxQueuedBytes,omitempty"`

	// overflowPolicy replaces queues.overflowPolicy for these sessions:
	// DropOldest, DropNewest or RejectPublish (never drop what was
	// accepted: MQTT 5.0 publishers get 0x97 Quota exceeded).
	// +kubebuilder:validation:Enum=DropOldest;DropNewest;RejectPublish
	// +optional
	OverflowPolicy string `json:"overflowPolicy,omitempty"`

	// queueQoS0 replaces queues.queueQoS0 for these sessions.
	// +optional
	QueueQoS0 *bool `json:"queueQoS0,omitempty"`

	// maxSessionExpiry replaces sessions.maxSessionExpiry for these
	// sessions when they connect (an MQTT 3.1.1 session's
	// defaultSessionExpiry is capped by it too). Whole seconds, between
	// 0s and 4294967294s.
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s') && duration(self) <= duration('4294967294s')",message="maxSessionExpiry of a queue policy must be between 0s and 4294967294s"
	// +optional
	MaxSessionExpiry *metav1.Duration `json:"maxSessionExpiry,omitempty"`

	// storeBudgetPercent is the share of the store budget (90% of
	// persistence.size) that the sessions of this policy may use together,
	// 1 to 100; unset: no share of their own. At the share their new
	// messages are handled by their overflowPolicy as at the store budget,
	// counted with reason policy_store_full. Shares may add up to more than
	// 100: each is a cap, not a reservation.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	StoreBudgetPercent *int32 `json:"storeBudgetPercent,omitempty"`
}

// Limits protect the broker from abusive or broken clients.
type Limits struct {
	// maxConnections is the most concurrent client connections; 0 means no
	// limit. Default 10000.
	// +kubebuilder:default=10000
	// +kubebuilder:validation:Minimum=0
	// +optional
	MaxConnections *int32 `json:"maxConnections,omitempty"`

	// maxInflight is the Receive Maximum the broker announces and the most
	// unacknowledged QoS 1/2 messages it sends one client. Default 128,
	// between 1 and 65535.
	// +kubebuilder:default=128
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	MaxInflight int32 `json:"maxInflight,omitempty"`

	// maxPacketSize is the largest MQTT packet the broker accepts, in bytes.
	// Default 1048576 (1 MiB), between 128 and 268435460.
	// +kubebuilder:default=1048576
	// +kubebuilder:validation:Minimum=128
	// +kubebuilder:validation:Maximum=268435460
	// +optional
	MaxPacketSize int32 `json:"maxPacketSize,omitempty"`

	// maxSubscriptionsPerClient bounds the subscriptions of one session.
	// Default 100, between 1 and 100000.
	// +kubebuilder:default=100
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	// +optional
	MaxSubscriptionsPerClient int32 `json:"maxSubscriptionsPerClient,omitempty"`

	// maxKeepAlive caps the keep alive of every client; 0s means no cap.
	// Default (unset): the broker's, 1h. An MQTT 5.0 client asking for
	// more (or for none) is told this Server Keep Alive in CONNACK; a 3.1.1
	// client cannot be told but is held to it all the same: a connection
	// silent for 1.5 times the cap is closed and counted, so idle
	// connections cannot be held open forever. Applies to new connections.
	// The broker accepts up to 65535s.
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="limits.maxKeepAlive must not be negative"
	// +optional
	MaxKeepAlive *metav1.Duration `json:"maxKeepAlive,omitempty"`

	// maxTopicLength is the longest topic name or topic filter accepted, in
	// bytes (a shared subscription's "$share/{group}/" included). Default
	// (unset): the broker's, 1024; the broker accepts 16 to 65535. A 5.0
	// PUBLISH at QoS 1/2 beyond it gets PUBACK/PUBREC 0x90 Topic Name
	// invalid, any other PUBLISH closes the connection; a will topic
	// refuses the CONNECT; a subscription filter gets SUBACK 0x8F (3.1.1:
	// 0x80). Each refusal is counted.
	// +kubebuilder:validation:Minimum=0
	// +optional
	MaxTopicLength *int32 `json:"maxTopicLength,omitempty"`

	// maxTopicLevels is the most levels ("/"-separated parts) of a topic
	// name or filter, refused as for maxTopicLength. Default (unset): the
	// broker's, 32; the broker accepts 1 to 65535. Every level is a node in
	// the subscription tree or the retained messages, so deep topics cost
	// far more memory than their bytes.
	// +kubebuilder:validation:Minimum=0
	// +optional
	MaxTopicLevels *int32 `json:"maxTopicLevels,omitempty"`

	// maxUserProperties is the most MQTT 5.0 User Properties one property
	// block of a packet may carry. Default (unset): the broker's, 64; the
	// broker accepts 1 to 65535. The broker refuses such a packet before
	// allocating the excess: a client beyond it is disconnected (5.0:
	// reason 0x95 Packet too large) and counted. Applies to new
	// connections.
	// +kubebuilder:validation:Minimum=0
	// +optional
	MaxUserProperties *int32 `json:"maxUserProperties,omitempty"`

	// maxUserPropertyBytes bounds the encoded size of the User Properties
	// of one property block, refused as for maxUserProperties. Default
	// (unset): the broker's, 64Ki; the broker accepts at least 64 bytes.
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).compareTo(quantity('0')) >= 0",message="limits.maxUserPropertyBytes must not be negative"
	// +optional
	MaxUserPropertyBytes *resource.Quantity `json:"maxUserPropertyBytes,omitempty"`

	// maxRetainedMessages caps the number of retained messages, all of
	// which are held in memory and on disk; 0 means no limit. Default
	// (unset): the broker's, 100000. At the cap a retained publish on a
	// new topic is refused (an MQTT 5.0 QoS 1/2 publisher gets 0x97 Quota
	// exceeded and the message is not delivered either; a publisher that
	// cannot be told has it delivered but not retained), while replacing
	// or clearing an existing topic's retained message still works. Each
	// refusal is counted.
	// +kubebuilder:validation:Minimum=0
	// +optional
	MaxRetainedMessages *int32 `json:"maxRetainedMessages,omitempty"`

	// maxRetainedBytes caps the bytes of all retained messages together
	// (each counted as for queues.maxQueuedBytes); 0 means no limit.
	// Default (unset): the broker's, 64Mi. Beyond it as for
	// maxRetainedMessages, except that replacing a message by one no
	// larger is always allowed. Retained messages also count against the
	// store budget (90% of persistence.size).
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).compareTo(quantity('0')) >= 0",message="limits.maxRetainedBytes must not be negative"
	// +optional
	MaxRetainedBytes *resource.Quantity `json:"maxRetainedBytes,omitempty"`
}

// Auth configures client authentication and topic ACLs.
type Auth struct {
	// usersSecretRef selects a key of a Secret in this namespace holding one
	// "username:bcrypt-hash" line per user (as `htpasswd -nbB` prints; blank
	// lines and # comments are ignored). Changing the Secret's content applies
	// without a restart. The operator checks every line and, if one is not
	// "username:bcrypt-hash" with a $2a$, $2b$ or $2y$ hash of cost at most 14
	// (each step doubles the time of every login), sets Degraded with
	// reason InvalidUsersSecret naming the line number (never its content):
	// the broker would refuse the file (keeping its previous users if
	// running, failing to start otherwise).
	// +optional
	UsersSecretRef *SecretKeyRef `json:"usersSecretRef,omitempty"`

	// acl lists topic rules, evaluated in order; empty allows every client
	// that may connect to publish and subscribe to everything.
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=1024
	// +optional
	ACL []ACLRule `json:"acl,omitempty"`

	// allowAnonymous admits clients without a username. Default false: the
	// broker listens on the pod network, so clients must authenticate.
	// +kubebuilder:default=false
	// +optional
	AllowAnonymous bool `json:"allowAnonymous,omitempty"`

	// login bounds the CPU that CONNECT packets can make the broker spend
	// on password checks (a cap on concurrent bcrypt checks) and backs off
	// source addresses whose logins keep failing. It sits under auth, not
	// at the top of the spec as in the broker's file (login.*), because it
	// governs how clients authenticate, next to the users it protects
	// (usersSecretRef) and allowAnonymous. Hot: changing it does not
	// restart the broker. Every field left unset keeps the broker's
	// default.
	// +optional
	Login Login `json:"login,omitzero"`
}

// Login bounds the cost of password checks. Every CONNECT with a username
// and password costs one bcrypt comparison (tens of milliseconds of CPU,
// also for an unknown username), so a flood of CONNECTs with wrong
// passwords could otherwise keep every core busy and starve honest clients.
// The broker checks how the fields fit together (failureBackoffMax at least
// failureBackoff, each against the other's default when unset); a spec it
// refuses is reported with reason InvalidConfig and not applied.
type Login struct {
	// maxConcurrentChecks is the most password checks (bcrypt comparisons)
	// the broker runs at once; 0 means one per CPU the broker may use.
	// Default (unset): the broker's, 0. A CONNECT that finds every check
	// slot busy waits up to checkWait. Lower it to keep CPU for message
	// traffic during a login storm, at the cost of slower logins.
	// +kubebuilder:validation:Minimum=0
	// +optional
	MaxConcurrentChecks *int32 `json:"maxConcurrentChecks,omitempty"`

	// checkWait bounds how long a CONNECT waits for a password check slot;
	// after it the client is refused (MQTT 5.0: 0x89 Server busy; 3.1.1:
	// return code 3, server unavailable) and retries later. Default
	// (unset): the broker's, 2s; the broker needs it positive.
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="auth.login.checkWait must not be negative"
	// +optional
	CheckWait *metav1.Duration `json:"checkWait,omitempty"`

	// failuresBeforeBackoff is the number of failed logins from one source
	// address tolerated before its back-off starts, so that a client that
	// mistypes a password once is not refused. Default (unset): the
	// broker's, 3.
	// +kubebuilder:validation:Minimum=0
	// +optional
	FailuresBeforeBackoff *int32 `json:"failuresBeforeBackoff,omitempty"`

	// failureBackoff is the back-off of a source address that failed more
	// than failuresBeforeBackoff logins: its CONNECTs are refused without a
	// password check (MQTT 5.0: 0x9F Connection rate exceeded; 3.1.1:
	// return code 3) for this long, doubling with each further failure up
	// to failureBackoffMax. A successful login clears it. 0s disables the
	// back-off. Default (unset): the broker's, 1s. Clients behind one NAT
	// address share a back-off.
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="auth.login.failureBackoff must not be negative"
	// +optional
	FailureBackoff *metav1.Duration `json:"failureBackoff,omitempty"`

	// failureBackoffMax caps the back-off of one source address; a quiet
	// failureBackoffMax after the back-off ended also clears it. Default
	// (unset): the broker's, 1m; the broker needs it at least
	// failureBackoff.
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="auth.login.failureBackoffMax must not be negative"
	// +optional
	FailureBackoffMax *metav1.Duration `json:"failureBackoffMax,omitempty"`

	// backoffAddresses bounds the source addresses remembered for the
	// back-off; when full, the least recently failed address is forgotten,
	// so an attacker rotating addresses cannot grow the broker's memory.
	// Default (unset): the broker's, 10000; the broker accepts 1 to
	// 1000000.
	// +kubebuilder:validation:Minimum=0
	// +optional
	BackoffAddresses *int32 `json:"backoffAddresses,omitempty"`
}

// SecretKeyRef selects a key of a Secret in the MQTTBroker's namespace.
type SecretKeyRef struct {
	// name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`

	// key in the Secret's data. Default "users".
	// +kubebuilder:default=users
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Key string `json:"key,omitempty"`
}

// ACLRule grants or denies access to topics. With no rules, every client
// that may connect may publish and subscribe to everything; with rules, a
// client may do only what a rule for it allows, and deny rules win. The
// broker's rules (broker/access) are the definition; this validation
// rejects at admission what they would refuse.
//
// +kubebuilder:validation:XValidation:rule="(has(self.user) && size(self.user) > 0) || !self.topic.contains('%u')",message="topic of a rule for anonymous clients (empty user) cannot use %u: they have no username"
type ACLRule struct {
	// user is who the rule is for: a username; "*" for every authenticated
	// user (anonymous clients are not included); or empty (or omitted) for
	// anonymous clients only. Names starting with '$' are reserved.
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('$')",message="user names starting with '$' are reserved; use \"*\" for every authenticated user or leave user empty for anonymous clients"
	// +kubebuilder:validation:XValidation:rule="!self.contains('\\u0000') && !self.contains('\\r') && !self.contains('\\n')",message="user must not contain a control character"
	// +optional
	User string `json:"user,omitempty"`

	// topic is an MQTT topic filter: '+' fills one whole level, '#' fills
	// the last level. %u is replaced by the username; %c by the client
	// identifier, which the client chooses, so %c is not an identity.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="self == '#' || self.matches('^([^+#/]*|[+])(/([^+#/]*|[+]))*(/#)?$')",message="topic must be an MQTT topic filter: '+' fills a whole level, '#' only the last level"
	// +kubebuilder:validation:XValidation:rule="!self.contains('\\u0000')",message="topic must not contain a NUL character"
	// +required
	Topic string `json:"topic"`

	// access is publish, subscribe, readwrite or deny. A subscription is
	// granted when its filter could match a topic the client may read, and
	// only messages on topics it may read are delivered to it; a filter
	// that lies wholly inside a deny rule is refused (SUBACK 0x80 for MQTT
	// 3.1.1, 0x87 Not authorized for 5.0).
	// +kubebuilder:validation:Enum=publish;subscribe;readwrite;deny
	// +required
	Access string `json:"access"`
}

// ServiceSpec configures the client Service.
//
// +kubebuilder:validation:XValidation:rule="!has(self.loadBalancerSourceRanges) || size(self.loadBalancerSourceRanges) == 0 || (has(self.type) && self.type == 'LoadBalancer')",message="service.loadBalancerSourceRanges needs service.type LoadBalancer"
// +kubebuilder:validation:XValidation:rule="!has(self.externalTrafficPolicy) || (has(self.type) && (self.type == 'LoadBalancer' || self.type == 'NodePort'))",message="service.externalTrafficPolicy needs service.type NodePort or LoadBalancer"
type ServiceSpec struct {
	// type is the Service type: ClusterIP (default), NodePort or
	// LoadBalancer.
	// +kubebuilder:validation:Enum=ClusterIP;NodePort;LoadBalancer
	// +kubebuilder:default=ClusterIP
	// +optional
	Type corev1.ServiceType `json:"type,omitempty"`

	// annotations are added to the client Service (for example to configure
	// a cloud load balancer). The operator owns the keys listed here:
	// editing one on the Service is undone, and removing one here removes it
	// from the Service (the keys set are tracked in the Service's
	// mqtt.bollard.io/managed-annotations annotation). Annotations others add
	// to the Service are kept.
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`

	// loadBalancerSourceRanges restricts the client addresses a
	// LoadBalancer Service admits, as CIDRs (for example 203.0.113.0/24),
	// where the cloud's load balancer supports it. Only with type
	// LoadBalancer. Empty admits every address.
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=43
	// +kubebuilder:validation:items:XValidation:rule="self.matches('^[0-9.]+/[0-9]+$') || self.matches('^[0-9A-Fa-f:.]+/[0-9]+$')",message="loadBalancerSourceRanges entries must be CIDRs such as 203.0.113.0/24 or 2001:db8::/32"
	// +optional
	LoadBalancerSourceRanges []string `json:"loadBalancerSourceRanges,omitempty"`

	// externalTrafficPolicy is the Service's external traffic policy:
	// Cluster (Kubernetes' default) or Local, which keeps the client's
	// source address (for the broker's per-address login back-off and its
	// logs) at the price of routing only to nodes running the broker pod.
	// Only with type NodePort or LoadBalancer.
	// +kubebuilder:validation:Enum=Cluster;Local
	// +optional
	ExternalTrafficPolicy corev1.ServiceExternalTrafficPolicy `json:"externalTrafficPolicy,omitempty"`
}

// Metrics configures the scraping of the broker's Prometheus metrics.
//
// +kubebuilder:validation:XValidation:rule="!has(self.serviceMonitor) || !has(self.serviceMonitor.enabled) || !self.serviceMonitor.enabled || !has(self.enabled) || self.enabled",message="metrics.serviceMonitor.enabled needs metrics.enabled: the ServiceMonitor scrapes the metrics Service"
// +kubebuilder:validation:XValidation:rule="!has(self.prometheusRule) || !has(self.prometheusRule.enabled) || !self.prometheusRule.enabled || !has(self.enabled) || self.enabled",message="metrics.prometheusRule.enabled needs metrics.enabled: its alerts read the metrics Prometheus scrapes from the metrics Service"
type Metrics struct {
	// enabled creates the metrics Service "<name>-metrics": a ClusterIP
	// Service whose one port, metrics, leads to the broker's admin endpoint
	// (container port 8080), where Prometheus scrapes /metrics. Default true.
	// The client Service never exposes the admin port. Setting it to false
	// deletes the metrics Service (and the ServiceMonitor).
	// +kubebuilder:default=true
	// +optional
	Enabled *bool `json:"enabled,omitempty"`

	// serviceMonitor configures a Prometheus Operator ServiceMonitor that
	// scrapes the metrics Service.
	// +kubebuilder:default={}
	// +optional
	ServiceMonitor ServiceMonitorSpec `json:"serviceMonitor,omitzero"`

	// prometheusRule configures a Prometheus Operator PrometheusRule with
	// Bollard's alerts for this broker (the rules of
	// config/prometheus/rules.yaml, limited to its series).
	// +kubebuilder:default={}
	// +optional
	PrometheusRule PrometheusRuleSpec `json:"prometheusRule,omitzero"`

	// topQueues exports the N deepest session queues on /metrics, as
	// bollard_queue_top_messages and bollard_queue_top_bytes labelled with
	// their client_id (the broker's admin.metricsTopQueues); a client that
	// leaves the N deepest loses its series. Default 0: none. /metrics
	// needs no token, so this shows client IDs to whoever can reach the
	// admin port (spec.networkPolicy limits that to the operator's
	// namespace and Prometheus). status.stats.topQueues lists the 10
	// deepest whatever this says. Changing it reloads the broker.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	TopQueues int32 `json:"topQueues,omitempty"`
}

// PrometheusRuleSpec configures the broker's PrometheusRule
// (monitoring.coreos.com/v1, named after the MQTTBroker).
type PrometheusRuleSpec struct {
	// enabled creates a PrometheusRule named after the MQTTBroker holding
	// Bollard's alerts (queue near its limit, drops, storage pressure,
	// configuration not applied, broker down or not ready, slow fsyncs;
	// docs/operations.md says what to do when each fires), limited to
	// this broker's series (job <name>-metrics, as the ServiceMonitor
	// scrapes them, in its namespace). Default false. It needs the
	// Prometheus Operator's PrometheusRule CRD: while that is not installed
	// the operator creates nothing, sets Degraded with reason
	// PrometheusRuleUnavailable and records a warning Event. Setting it to
	// false deletes the PrometheusRule the operator created. Do not also
	// install the fleet-wide rules (the Helm chart's prometheusRule, or
	// config/prometheus), or every alert fires twice.
	// +kubebuilder:default=false
	// +optional
	Enabled bool `json:"enabled,omitempty"`

	// labels are added to the PrometheusRule so that a Prometheus selects
	// it (its ruleSelector, for example release: kube-prometheus-stack).
	// The operator's own app.kubernetes.io/ labels take precedence.
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
}

// ServiceMonitorSpec configures the broker's ServiceMonitor
// (monitoring.coreos.com/v1, named after the MQTTBroker).
type ServiceMonitorSpec struct {
	// enabled creates a ServiceMonitor named after the MQTTBroker that
	// scrapes /metrics on the metrics Service. Default false. It needs the
	// Prometheus Operator's ServiceMonitor CRD: while that is not installed
	// the operator creates nothing, sets Degraded with reason
	// ServiceMonitorUnavailable and records a warning Event, and it creates
	// the ServiceMonitor as soon as the CRD appears. Setting it to false
	// deletes the ServiceMonitor the operator created.
	// +kubebuilder:default=false
	// +optional
	Enabled bool `json:"enabled,omitempty"`

	// interval is how often Prometheus scrapes the broker, as a Prometheus
	// duration (for example 15s, 1m or 1m30s). Default 30s.
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:Pattern=`^([0-9]+(ms|s|m|h))+$`
	// +kubebuilder:validation:MaxLength=32
	// +optional
	Interval string `json:"interval,omitempty"`

	// labels are added to the ServiceMonitor so that a Prometheus selects it
	// (for example release: kube-prometheus-stack, matching the
	// serviceMonitorSelector of the kube-prometheus-stack chart). The
	// operator's own app.kubernetes.io/ labels take precedence.
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
}

// PodDisruptionBudgetSpec configures the broker's PodDisruptionBudget.
type PodDisruptionBudgetSpec struct {
	// enabled creates the PodDisruptionBudget. Default true.
	// +kubebuilder:default=true
	// +optional
	Enabled *bool `json:"enabled,omitempty"`

	// maxUnavailable is how many broker pods a voluntary eviction may take
	// down at once. Default 1, which lets node drains proceed (clients
	// reconnect and resume their sessions once the pod is back); 0 blocks
	// drains until an administrator deletes the pod by hand.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +optional
	MaxUnavailable *int32 `json:"maxUnavailable,omitempty"`
}

// NetworkPolicySpec configures the broker's NetworkPolicy.
type NetworkPolicySpec struct {
	// enabled creates the NetworkPolicy. Default true. Setting it to false
	// deletes the NetworkPolicy the operator created, leaving the admin port
	// reachable from every pod of the cluster (the admin API still requires
	// its token; /metrics and the probes are open). The operator's
	// --network-policies=false flag (Helm value networkPolicy.enabled)
	// turns NetworkPolicies off for every MQTTBroker.
	// +kubebuilder:default=true
	// +optional
	Enabled *bool `json:"enabled,omitempty"`

	// prometheus selects the pods that may scrape /metrics on the admin
	// port. When unset, the operator's default applies (its flags
	// --prometheus-namespace-selector and --prometheus-pod-selector, Helm
	// values networkPolicy.prometheus.*; by default pods labelled
	// app.kubernetes.io/name=prometheus in any namespace).
	// +optional
	Prometheus *NetworkPolicyPeer `json:"prometheus,omitempty"`
}

// NetworkPolicyPeer selects pods, as a NetworkPolicy peer: pods matching
// podSelector in namespaces matching namespaceSelector.
//
// +kubebuilder:validation:XValidation:rule="has(self.namespaceSelector) || has(self.podSelector)",message="set namespaceSelector, podSelector or both: a peer with neither would admit every pod"
type NetworkPolicyPeer struct {
	// namespaceSelector selects namespaces by label; unset means the
	// MQTTBroker's own namespace when podSelector is set. {} selects every
	// namespace. Namespaces carry kubernetes.io/metadata.name=<name>.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`

	// podSelector selects pods by label within the selected namespaces;
	// unset means every pod of them.
	// +optional
	PodSelector *metav1.LabelSelector `json:"podSelector,omitempty"`
}

// MQTTBrokerStatus is what the operator observed.
type MQTTBrokerStatus struct {
	// observedGeneration is the metadata.generation the operator last
	// reconciled. It stays behind while the broker is paused.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions are Ready, Progressing, Degraded and ConfigApplied.
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// endpoint is the in-cluster address clients connect to
	// (service.namespace.svc:port), preferring plain MQTT, then TLS.
	// +optional
	Endpoint string `json:"endpoint,omitempty"`

	// readyReplicas is the number of broker pods passing their readiness
	// probe.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`

	// version is the broker version reported by the running broker.
	// +optional
	Version string `json:"version,omitempty"`

	// appliedConfigGeneration is the lowest configuration generation the
	// running brokers report having applied.
	// +optional
	AppliedConfigGeneration int64 `json:"appliedConfigGeneration,omitempty"`

	// sessions is the number of sessions (online and offline) the running
	// brokers report (the Sessions printer column). The operator asks the
	// brokers on reconciles (each pod at most every 10 seconds, its
	// --broker-status-min-interval, unless it awaits a configuration
	// generation) and, while the broker is Ready, every 30 seconds (its
	// --broker-status-period), so it may lag by that much; status.stats
	// says when it was read. Unset until a broker answered; while none
	// answers it keeps the last count read (a count that could not be read
	// is never shown as 0).
	// +optional
	Sessions *int64 `json:"sessions,omitempty"`

	// queuedMessages is the number of messages queued for offline sessions
	// that the running brokers report (the Queued printer column), refreshed
	// like sessions. Unset, or kept, like sessions.
	// +optional
	QueuedMessages *int64 `json:"queuedMessages,omitempty"`

	// leader is the pod that leads a cluster (replicas 3 or 5) and serves
	// its clients, as the members last reported it (the Leader printer
	// column). Unset when no member names a leader, or with replicas 1.
	// +optional
	Leader string `json:"leader,omitempty"`

	// cluster is what the members of a cluster (replicas 3 or 5) last
	// reported on GET /v1/cluster. Unset with replicas 1.
	// +optional
	Cluster *ClusterStatus `json:"cluster,omitempty"`

	// stats is what the broker pods last reported on their admin endpoint
	// (GET /v1/status), totalled over the pods that answered: sessions,
	// queues, store use, recent drops and the deepest queues. The operator
	// asks on reconciles and every --broker-status-period while the broker
	// is Ready, but each pod at most once per --broker-status-min-interval
	// (default 10 s) unless it is waiting for a configuration generation.
	// While no pod answers, the last figures stay with their observedAt;
	// a figure no broker reported is left out, never shown as 0.
	// +optional
	Stats *BrokerStats `json:"stats,omitempty"`
}

// ClusterStatus is a cluster's replication state as its members reported
// it.
type ClusterStatus struct {
	// observedAt is when the members were asked.
	// +required
	ObservedAt metav1.Time `json:"observedAt"`

	// term is the leader's Raft term; it grows with every election. Unset
	// when no leader answered.
	// +optional
	Term *int64 `json:"term,omitempty"`

	// quorum is how many voting members must be healthy for the cluster to
	// accept writes (a majority of the voters).
	// +optional
	Quorum *int32 `json:"quorum,omitempty"`

	// healthyMembers is how many voters are caught up (the leader
	// included): the leader heard from them lately and reports them
	// within a few entries, and each answered itself, following this
	// leader in its term. Unset when no leader answered.
	// +optional
	HealthyMembers *int32 `json:"healthyMembers,omitempty"`

	// members are the pods of the cluster and the members of its Raft
	// configuration, by name.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	// +optional
	Members []ClusterMemberStatus `json:"members,omitempty"`

	// lastRolled is the member whose pod the operator last deleted to roll
	// it onto the current pod template, and when: a pod that is not back
	// in time stops the roll (Degraded RollStalled).
	// +optional
	LastRolled *RolledMember `json:"lastRolled,omitempty"`

	// handover is the readiness handover under way in a roll: the
	// follower made ready to take the clients before the leader hands it
	// leadership, and when the operator started it. When the client
	// Service's endpoints do not move to it within 30 s, the roll stops
	// (Degraded RollStalled) and tries again 30 s later.
	// +optional
	Handover *HandoverStatus `json:"handover,omitempty"`
}

// HandoverStatus is a readiness handover under way.
type HandoverStatus struct {
	// successor is the member (pod) that takes leadership.
	// +required
	Successor string `json:"successor"`

	// since is when the operator started the handover.
	// +required
	Since metav1.Time `json:"since"`
}

// RolledMember is a member whose pod the operator deleted, and when.
type RolledMember struct {
	// name is the member's pod.
	// +required
	Name string `json:"name"`

	// at is when the operator deleted its pod.
	// +required
	At metav1.Time `json:"at"`
}

// ClusterMemberStatus is one member of a cluster.
type ClusterMemberStatus struct {
	// name is the member's ID: its pod's name.
	// +required
	Name string `json:"name"`

	// role is leader, follower or candidate as the member reported it,
	// or Unknown when it did not answer.
	// +optional
	Role string `json:"role,omitempty"`

	// voter is true when the member votes (it is in the leader's
	// configuration as a voter); false while a new member catches up.
	// Unset when the leader did not answer.
	// +optional
	Voter *bool `json:"voter,omitempty"`

	// lag is how many log entries the member is behind the leader, as the
	// leader last heard it. Unset when unknown (never shown as 0).
	// +optional
	Lag *int64 `json:"lag,omitempty"`

	// appliedIndex is the last log entry the member applied to its store,
	// as it reported it. Unset when it did not answer.
	// +optional
	AppliedIndex *int64 `json:"appliedIndex,omitempty"`

	// upToDate is true when the member runs the current pod template.
	// +optional
	UpToDate bool `json:"upToDate,omitempty"`
}

// BrokerStats are the figures the broker pods reported (kubectl describe
// lists them in alphabetical order).
type BrokerStats struct {
	// observedAt is when the figures were read (the oldest read among the
	// pods totalled); compare it with the current time for their age.
	// +required
	ObservedAt metav1.Time `json:"observedAt"`

	// pods is how many broker pods answered with figures: the figures
	// total theirs. A cluster member that does not serve (only the leader
	// holds sessions) has none to give.
	// +required
	Pods int32 `json:"pods"`

	// sessionsOnline is the number of sessions with a connected client.
	// +optional
	SessionsOnline *int64 `json:"sessionsOnline,omitempty"`

	// sessionsOffline is the number of sessions kept for clients that are
	// not connected (persistent sessions awaiting their client).
	// +optional
	SessionsOffline *int64 `json:"sessionsOffline,omitempty"`

	// queuedMessages is the number of messages queued for sessions,
	// inflight ones included.
	// +optional
	QueuedMessages *int64 `json:"queuedMessages,omitempty"`

	// queuedBytes is the size of those messages, as the queue limits count
	// it.
	// +optional
	QueuedBytes *int64 `json:"queuedBytes,omitempty"`

	// fullestQueuePercent is how full the fullest session queue is: its
	// messages or bytes as a percentage of the queue limit, whichever is
	// larger (100: the overflow policy acts on each new message).
	// +optional
	FullestQueuePercent *int32 `json:"fullestQueuePercent,omitempty"`

	// storage is the store of the pod whose store is fullest.
	// +optional
	Storage *StorageStats `json:"storage,omitempty"`

	// drops counts the messages the brokers dropped recently, by reason.
	// +optional
	Drops *DropStats `json:"drops,omitempty"`

	// topQueues are the deepest session queues, deepest first (at most
	// 10; empty queues are not listed).
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=10
	// +optional
	TopQueues []QueueStats `json:"topQueues,omitempty"`
}

// StorageStats is a broker's store against its budget
// (spec.queues.maxStoreBytes, by default 90% of spec.persistence.size).
type StorageStats struct {
	// usage is usedBytes against budgetBytes as the Store printer column
	// shows it: "41% of 900Mi", or "368Mi" without a budget.
	// +required
	Usage string `json:"usage"`

	// usedBytes is what counts against the budget: the larger of the
	// stored messages' size and the store's files on disk.
	// +required
	UsedBytes int64 `json:"usedBytes"`

	// budgetBytes is the store budget; 0: none.
	// +required
	BudgetBytes int64 `json:"budgetBytes"`

	// volumeFreeBytes is the free space left on the broker's volume;
	// unset when the broker could not tell.
	// +optional
	VolumeFreeBytes *int64 `json:"volumeFreeBytes,omitempty"`
}

// DropStats are the messages dropped over the brokers' recent window.
type DropStats struct {
	// windowSeconds is how far back the brokers count (300: the last five
	// minutes).
	// +required
	WindowSeconds int64 `json:"windowSeconds"`

	// total is the number of messages dropped in the window.
	// +required
	Total int64 `json:"total"`

	// byReason counts them by the broker's drop reason (queue_full,
	// quota_rejected, store_full, policy_store_full, expired, too_large,
	// slow_consumer, qos0_offline, session_expired, not_authorized,
	// read_denied; see docs/troubleshooting.md); reasons without drops are
	// left out.
	// +optional
	ByReason map[string]int64 `json:"byReason,omitempty"`
}

// QueueStats is one session queue among the deepest.
type QueueStats struct {
	// clientID is the session's MQTT client ID (cut to 256 bytes, ending
	// in "...", when longer).
	// +required
	ClientID string `json:"clientID"`

	// messages is the number of messages queued, inflight ones included.
	// +required
	Messages int64 `json:"messages"`

	// bytes is their size, as the queue limits count it.
	// +required
	Bytes int64 `json:"bytes"`

	// policy names the queue policy whose limits the session has
	// (spec.queues.policies; "default" when none selects it); empty when
	// the broker does not report one.
	// +optional
	Policy string `json:"policy,omitempty"`
}
