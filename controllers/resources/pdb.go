package resources

import (
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/bollard-io/bollard/api/v1alpha1"
)

// PodDisruptionBudget guards the broker pods against voluntary evictions,
// or returns nil when spec.podDisruptionBudget.enabled is false (the
// reconciler then deletes any it made before).
func PodDisruptionBudget(b *v1alpha1.MQTTBroker) *policyv1.PodDisruptionBudget {
	p := b.Spec.PodDisruptionBudget
	if p.Enabled != nil && !*p.Enabled {
		return nil
	}
	maxUnavailable := int32(1)
	if p.MaxUnavailable != nil {
		maxUnavailable = *p.MaxUnavailable
	}
	mu := intstr.FromInt32(maxUnavailable)
	return &policyv1.PodDisruptionBudget{
		ObjectMeta: objectMeta(b, PodDisruptionBudgetName(b)),
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable: &mu,
			Selector:       &metav1.LabelSelector{MatchLabels: SelectorLabels(b)},
		},
	}
}
