package resources

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/bollard-io/bollard/api/v1alpha1"
)

// ServiceAccount is the broker pod's identity. The broker never talks to
// the Kubernetes API, so no token is mounted.
func ServiceAccount(b *v1alpha1.MQTTBroker) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{
		ObjectMeta:                   objectMeta(b, ServiceAccountName(b)),
		AutomountServiceAccountToken: ptr.To(false),
	}
}
