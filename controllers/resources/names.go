package resources

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bollard-io/bollard/api/v1alpha1"
)

// Annotations the operator writes on child objects.
const (
	// ConfigHashAnnotation, on the pod template, digests everything that a
	// running broker cannot apply without a restart: the restart fields of
	// the rendered configuration. Secret contents are not in it: the broker
	// reloads certificates, users and its admin token from the mounted files.
	ConfigHashAnnotation = "mqtt.bollard.io/config-hash"
	// ConfigGenerationAnnotation, on the ConfigMap, is the configuration
	// generation rendered into it (the MQTTBroker's metadata.generation).
	ConfigGenerationAnnotation = "mqtt.bollard.io/config-generation"
	// ManagedAnnotationsAnnotation lists, comma-separated, the annotations
	// the operator set on a child object, so that it removes the ones the
	// spec no longer asks for (spec.service.annotations) and leaves those
	// others added alone.
	ManagedAnnotationsAnnotation = "mqtt.bollard.io/managed-annotations"
)

// Well-known labels, as recommended by Kubernetes.
const (
	LabelName      = "app.kubernetes.io/name"
	LabelInstance  = "app.kubernetes.io/instance"
	LabelComponent = "app.kubernetes.io/component"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	LabelVersion   = "app.kubernetes.io/version"
	LabelPartOf    = "app.kubernetes.io/part-of"
)

// ManagedBy is the value of LabelManagedBy on every child object; the
// operator's cache only holds objects carrying it.
const ManagedBy = "bollard-operator"

// Paths inside the broker container.
const (
	ConfigDir     = "/etc/bollard"
	ConfigFile    = "bollard.yaml"
	DataMountPath = "/var/lib/bollard"
	// DataDir is a directory on the volume rather than its root, which may
	// hold the filesystem's lost+found.
	DataDir = DataMountPath + "/data"
	// SecretsDir holds the mounted Secrets, each in its own directory.
	SecretsDir = "/var/run/bollard"
	UsersDir   = SecretsDir + "/users"
	// AdminTokenDir holds the admin token Secret's token key.
	AdminTokenDir = SecretsDir + "/admin"
	TLSDir        = SecretsDir + "/tls"
	TmpDir        = "/tmp"
	DataVolume    = "data"
	ContainerBin  = "bollard"
	// TLSCAKey is the key of the client CA bundle in the TLS Secret, as
	// cert-manager writes it.
	TLSCAKey = "ca.crt"
)

// Port names, shared by the container and the Services.
const (
	PortMQTT      = "mqtt"
	PortTLS       = "mqtts"
	PortWebSocket = "ws"
	PortAdmin     = "admin"
)

// SelectorLabels select the broker's pods. They never change for the life
// of the MQTTBroker (a StatefulSet's selector is immutable).
func SelectorLabels(b *v1alpha1.MQTTBroker) map[string]string {
	return map[string]string{
		LabelName:     "bollard",
		LabelInstance: b.Name,
	}
}

// Labels are set on every child object. They hold no version, so they are
// safe on objects that must not change across upgrades (the volume claim
// template).
func Labels(b *v1alpha1.MQTTBroker) map[string]string {
	l := SelectorLabels(b)
	l[LabelComponent] = "broker"
	l[LabelManagedBy] = ManagedBy
	l[LabelPartOf] = "bollard"
	return l
}

// ServiceAccountName names the broker's ServiceAccount.
func ServiceAccountName(b *v1alpha1.MQTTBroker) string { return b.Name }

// ConfigMapName names the ConfigMap holding the broker configuration.
func ConfigMapName(b *v1alpha1.MQTTBroker) string { return b.Name + "-config" }

// ServiceName names the client Service.
func ServiceName(b *v1alpha1.MQTTBroker) string { return b.Name }

// HeadlessServiceName names the StatefulSet's governing headless Service.
func HeadlessServiceName(b *v1alpha1.MQTTBroker) string { return b.Name + "-headless" }

// StatefulSetName names the StatefulSet.
func StatefulSetName(b *v1alpha1.MQTTBroker) string { return b.Name }

// AdminTokenSecretName names the Secret holding the broker's admin token.
func AdminTokenSecretName(b *v1alpha1.MQTTBroker) string { return b.Name + "-admin-token" }

// NetworkPolicyName names the broker's NetworkPolicy.
func NetworkPolicyName(b *v1alpha1.MQTTBroker) string { return b.Name }

// PodDisruptionBudgetName names the PodDisruptionBudget.
func PodDisruptionBudgetName(b *v1alpha1.MQTTBroker) string { return b.Name }

// PVCName is the name the StatefulSet controller gives the data claim of
// the pod with the given ordinal.
func PVCName(b *v1alpha1.MQTTBroker, ordinal int) string {
	return fmt.Sprintf("%s-%s-%d", DataVolume, StatefulSetName(b), ordinal)
}

// Endpoint is the in-cluster address of the client Service, preferring
// plain MQTT, then TLS, then WebSocket.
func Endpoint(b *v1alpha1.MQTTBroker) string {
	host := fmt.Sprintf("%s.%s.svc", ServiceName(b), b.Namespace)
	l := b.Spec.Listeners
	switch {
	case mqttEnabled(b):
		return fmt.Sprintf("%s:%d", host, l.MQTT.Port)
	case l.TLS != nil:
		return fmt.Sprintf("%s:%d", host, l.TLS.Port)
	case l.WebSocket != nil:
		return fmt.Sprintf("ws://%s:%d%s", host, l.WebSocket.Port, l.WebSocket.Path)
	}
	return ""
}

func mqttEnabled(b *v1alpha1.MQTTBroker) bool {
	return b.Spec.Listeners.MQTT.Enabled == nil || *b.Spec.Listeners.MQTT.Enabled
}

// objectMeta is the metadata every child starts from: name, namespace,
// labels and the controller reference to the broker.
func objectMeta(b *v1alpha1.MQTTBroker, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:            name,
		Namespace:       b.Namespace,
		Labels:          Labels(b),
		OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(b, v1alpha1.GroupVersion.WithKind("MQTTBroker"))},
	}
}

// imageVersion is the tag of an image reference, usable as a label value,
// or "" when the reference has no tag (a digest, or none).
func imageVersion(image string) string {
	if i := strings.Index(image, "@"); i >= 0 {
		return ""
	}
	i := strings.LastIndex(image, ":")
	if i < 0 || strings.Contains(image[i:], "/") {
		return ""
	}
	tag := image[i+1:]
	if len(tag) > 63 {
		return ""
	}
	return tag
}
