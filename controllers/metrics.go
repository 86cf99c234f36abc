package controllers

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/controllers/resources"
)

// applyMetricsService writes the metrics Service, or deletes the one the
// operator made when spec.metrics.enabled is false. The ServiceMonitor and
// the PrometheusRule are optional kinds (optional.go).
func (r *MQTTBrokerReconciler) applyMetricsService(ctx context.Context, p *pass) error {
	b := p.broker
	if want := resources.MetricsService(b); want != nil {
		_, _, err := apply(ctx, r, b, want, newService, mergeService)
		return err
	}
	cur := &corev1.Service{}
	cur.SetName(resources.MetricsServiceName(b))
	cur.SetNamespace(b.Namespace)
	return r.deleteOwned(ctx, b, cur, "Service", "spec.metrics.enabled is false")
}

// deleteOwned deletes obj (named, in b's namespace) if b controls it,
// recording why. Objects others control, or that are gone, are left alone.
func (r *MQTTBrokerReconciler) deleteOwned(ctx context.Context, b *v1alpha1.MQTTBroker, obj client.Object, kind, why string) error {
	err := r.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj)
	if apierrors.IsNotFound(err) || meta.IsNoMatchError(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if ref := metav1.GetControllerOf(obj); ref == nil || ref.UID != b.UID {
		return nil
	}
	uid := obj.GetUID()
	if err := r.Client.Delete(ctx, obj, client.Preconditions{UID: &uid}); client.IgnoreNotFound(err) != nil {
		return err
	}
	r.event(b, obj, false, EventDeleted, "Delete", "Deleted %s %s (%s)", kind, obj.GetName(), why)
	return nil
}

func runtimeDeepCopy(v any) any {
	return (&unstructured.Unstructured{Object: map[string]any{"v": v}}).DeepCopy().Object["v"]
}
