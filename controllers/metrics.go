package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/controllers/resources"
)

// +kubebuilder:rbac:groups=monitoring.coreos.com,resources=servicemonitors,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,verbs=get;list;watch

// applyMetricsService writes the metrics Service, or deletes the one the
// operator made when spec.metrics.enabled is false.
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

// applyServiceMonitor writes the ServiceMonitor where its CRD is
// installed. Where it is not, a broker that asks for one is Degraded (with
// a warning Event) but nothing fails: the CRD watch brings the broker back
// when the Prometheus Operator is installed.
func (r *MQTTBrokerReconciler) applyServiceMonitor(ctx context.Context, p *pass) error {
	b := p.broker
	want := resources.ServiceMonitor(b)
	served, err := r.serviceMonitorsServed()
	if err != nil {
		return err
	}
	if !served {
		if want != nil {
			msg := fmt.Sprintf("spec.metrics.serviceMonitor.enabled is true but the ServiceMonitor CRD (%s, %s) is not installed: "+
				"install the Prometheus Operator, or scrape the %s Service another way",
				resources.ServiceMonitorCRDName, resources.ServiceMonitorGVK.GroupVersion(), resources.MetricsServiceName(b))
			p.problem(v1alpha1.ReasonServiceMonitorUnavailable, "%s", msg)
			r.event(b, nil, true, EventServiceMonitorUnavailable, "Apply", "%s", msg)
		}
		return nil
	}
	if want != nil {
		if err := r.serviceMonitorWatch.ensure(); err != nil {
			return err
		}
		_, _, err := apply(ctx, r, b, want, newServiceMonitor, mergeServiceMonitor)
		return err
	}
	cur := newServiceMonitor()
	cur.SetName(resources.ServiceMonitorName(b))
	cur.SetNamespace(b.Namespace)
	return r.deleteOwned(ctx, b, cur, "ServiceMonitor", "spec.metrics.serviceMonitor.enabled is false")
}

// serviceMonitorsServed asks whether the apiserver serves ServiceMonitors
// (kindServed).
func (r *MQTTBrokerReconciler) serviceMonitorsServed() (bool, error) {
	return r.kindServed(resources.ServiceMonitorGVK)
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

func newServiceMonitor() *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(resources.ServiceMonitorGVK)
	return u
}

// mergeServiceMonitor is mergeUnstructuredSpec: fields the CRD's schema
// defaults are left alone.
func mergeServiceMonitor(cur, want *unstructured.Unstructured) { mergeUnstructuredSpec(cur, want) }

func runtimeDeepCopy(v any) any {
	return (&unstructured.Unstructured{Object: map[string]any{"v": v}}).DeepCopy().Object["v"]
}

// brokersWantingServiceMonitors maps an event on the ServiceMonitor CRD to
// the brokers that ask for a ServiceMonitor.
func (r *MQTTBrokerReconciler) brokersWantingServiceMonitors(ctx context.Context, _ client.Object) []reconcile.Request {
	var list v1alpha1.MQTTBrokerList
	if err := r.Client.List(ctx, &list); err != nil {
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		if resources.ServiceMonitorEnabled(&list.Items[i]) {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
	}
	return reqs
}
