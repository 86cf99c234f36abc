package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/controllers/resources"
)

// +kubebuilder:rbac:groups=monitoring.coreos.com,resources=servicemonitors;prometheusrules,verbs=get;list;watch;create;update;patch;delete
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

// monitoringKind is one of the Prometheus Operator's kinds the operator
// creates (ServiceMonitor, PrometheusRule): a CRD that may be missing, or
// installed after the operator started.
type monitoringKind struct {
	gvk     schema.GroupVersionKind
	crdName string
	// field is the spec switch, for messages.
	field  string
	reason string
	event  EventReason
	// name and want build the object for a broker (want nil: not wanted).
	name  func(*v1alpha1.MQTTBroker) string
	want  func(*v1alpha1.MQTTBroker) *unstructured.Unstructured
	watch *lazyWatch
}

func (r *MQTTBrokerReconciler) serviceMonitors() monitoringKind {
	return monitoringKind{gvk: resources.ServiceMonitorGVK, crdName: resources.ServiceMonitorCRDName,
		field: "spec.metrics.serviceMonitor.enabled", reason: v1alpha1.ReasonServiceMonitorUnavailable,
		event: EventServiceMonitorUnavailable, name: resources.ServiceMonitorName, want: resources.ServiceMonitor,
		watch: r.serviceMonitorWatch}
}

func (r *MQTTBrokerReconciler) prometheusRules() monitoringKind {
	return monitoringKind{gvk: resources.PrometheusRuleGVK, crdName: resources.PrometheusRuleCRDName,
		field: "spec.metrics.prometheusRule.enabled", reason: v1alpha1.ReasonPrometheusRuleUnavailable,
		event: EventPrometheusRuleUnavailable, name: resources.PrometheusRuleName, want: resources.PrometheusRule,
		watch: r.prometheusRuleWatch}
}

// applyServiceMonitor writes the ServiceMonitor where its CRD is
// installed (applyMonitoring).
func (r *MQTTBrokerReconciler) applyServiceMonitor(ctx context.Context, p *pass) error {
	return r.applyMonitoring(ctx, p, r.serviceMonitors())
}

// applyPrometheusRule writes the PrometheusRule with the broker's alerts
// where its CRD is installed (applyMonitoring).
func (r *MQTTBrokerReconciler) applyPrometheusRule(ctx context.Context, p *pass) error {
	return r.applyMonitoring(ctx, p, r.prometheusRules())
}

// applyMonitoring writes the object of kind k where its CRD is installed,
// or deletes the one the operator made when the spec no longer asks for
// it. Where the CRD is not installed, a broker that asks for the object is
// Degraded (with a warning Event) but nothing fails: the CRD watch brings
// the broker back when the Prometheus Operator is installed.
func (r *MQTTBrokerReconciler) applyMonitoring(ctx context.Context, p *pass, k monitoringKind) error {
	b := p.broker
	want := k.want(b)
	served, err := r.served(k.gvk)
	if err != nil {
		return err
	}
	if !served {
		if want != nil {
			msg := fmt.Sprintf("%s is true but the %s CRD (%s, %s) is not installed: "+
				"install the Prometheus Operator, or %s", k.field, k.gvk.Kind, k.crdName, k.gvk.GroupVersion(), k.instead(b))
			p.problem(k.reason, "%s", msg)
			r.event(b, nil, true, k.event, "Apply", "%s", msg)
		}
		return nil
	}
	if want != nil {
		if err := k.watch.ensure(); err != nil {
			return err
		}
		_, _, err := apply(ctx, r, b, want, k.newObject, mergeMonitoring)
		return err
	}
	cur := k.newObject()
	cur.SetName(k.name(b))
	cur.SetNamespace(b.Namespace)
	return r.deleteOwned(ctx, b, cur, k.gvk.Kind, k.field+" is false")
}

// instead says what to do without the Prometheus Operator.
func (k monitoringKind) instead(b *v1alpha1.MQTTBroker) string {
	if k.gvk.Kind == resources.PrometheusRuleGVK.Kind {
		return "load config/prometheus/rules.yaml into Prometheus another way"
	}
	return "scrape the " + resources.MetricsServiceName(b) + " Service another way"
}

func (k monitoringKind) newObject() *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(k.gvk)
	return u
}

// served asks the RESTMapper whether the apiserver serves gvk. The
// manager's mapper discovers a group it does not know on demand, so a CRD
// installed after the operator started is found.
func (r *MQTTBrokerReconciler) served(gvk schema.GroupVersionKind) (bool, error) {
	_, err := r.Client.RESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version)
	switch {
	case meta.IsNoMatchError(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("discovering %s: %w", gvk.GroupKind(), err)
	}
	return true, nil
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

// mergeMonitoring rewrites the spec of a ServiceMonitor or PrometheusRule
// when a field the operator sets differs; fields the CRD's schema
// defaults are left alone (driftPaths with every map open).
func mergeMonitoring(cur, want *unstructured.Unstructured) {
	if len(driftPaths("spec", want.Object["spec"], cur.Object["spec"], driftOptions{allMapsOpen: true})) == 0 {
		return
	}
	cur.Object["spec"] = runtimeDeepCopy(want.Object["spec"])
}

func runtimeDeepCopy(v any) any {
	return (&unstructured.Unstructured{Object: map[string]any{"v": v}}).DeepCopy().Object["v"]
}

// brokersWantingMonitoring maps an event on the ServiceMonitor or
// PrometheusRule CRD to the brokers that ask for such an object.
func (r *MQTTBrokerReconciler) brokersWantingMonitoring(ctx context.Context, crd client.Object) []reconcile.Request {
	wants := resources.ServiceMonitorEnabled
	if crd.GetName() == resources.PrometheusRuleCRDName {
		wants = resources.PrometheusRuleEnabled
	}
	var list v1alpha1.MQTTBrokerList
	if err := r.Client.List(ctx, &list); err != nil {
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		if wants(&list.Items[i]) {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
	}
	return reqs
}
