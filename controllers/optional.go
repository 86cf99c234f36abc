package controllers

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/controllers/resources"
)

// +kubebuilder:rbac:groups=monitoring.coreos.com,resources=servicemonitors;prometheusrules,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=cert-manager.io,resources=certificates,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,verbs=get;list;watch

// optionalKind is a kind another project's CRD defines that the operator
// creates for the brokers asking for it: the Prometheus Operator's
// ServiceMonitor and PrometheusRule, cert-manager's Certificate. The CRD
// may be missing, or installed after the operator started. The operator
// builds these objects as unstructured and depends on none of that code.
type optionalKind struct {
	gvk     schema.GroupVersionKind
	crdName string
	// wanted reports whether a broker asks for the object; want builds it
	// (nil when not wanted); name names it.
	wanted func(*v1alpha1.MQTTBroker) bool
	want   func(*v1alpha1.MQTTBroker) *unstructured.Unstructured
	name   func(*v1alpha1.MQTTBroker) string
	// asks is the spec setting that asks for the object and unasked the
	// one that no longer does, for messages.
	asks, unasked string
	// provider installs the CRD; instead says what to do without it.
	provider string
	instead  func(*v1alpha1.MQTTBroker) string
	// reason and event are the Degraded reason and the warning Event of a
	// broker that asks for the object where the CRD is not installed.
	reason string
	event  EventReason
}

var (
	// certificates: cert-manager issues the TLS listener's certificate
	// (spec.listeners.tls.issuerRef).
	certificates = optionalKind{
		gvk: resources.CertificateGVK, crdName: resources.CertificateCRDName,
		wanted: resources.CertificateWanted, want: resources.Certificate, name: resources.CertificateName,
		asks: "spec.listeners.tls.issuerRef is set", unasked: "spec.listeners.tls.issuerRef is not set",
		provider: "cert-manager",
		instead: func(b *v1alpha1.MQTTBroker) string {
			return "create the kubernetes.io/tls Secret " + resources.TLSSecretName(b) + " yourself and drop issuerRef"
		},
		reason: v1alpha1.ReasonCertManagerUnavailable, event: EventCertManagerUnavailable,
	}
	// serviceMonitors: the Prometheus Operator scrapes the metrics Service.
	serviceMonitors = optionalKind{
		gvk: resources.ServiceMonitorGVK, crdName: resources.ServiceMonitorCRDName,
		wanted: resources.ServiceMonitorEnabled, want: resources.ServiceMonitor, name: resources.ServiceMonitorName,
		asks: "spec.metrics.serviceMonitor.enabled is true", unasked: "spec.metrics.serviceMonitor.enabled is false",
		provider: "the Prometheus Operator",
		instead: func(b *v1alpha1.MQTTBroker) string {
			return "scrape the " + resources.MetricsServiceName(b) + " Service another way"
		},
		reason: v1alpha1.ReasonServiceMonitorUnavailable, event: EventServiceMonitorUnavailable,
	}
	// prometheusRules: the Prometheus Operator loads the broker's alerts.
	prometheusRules = optionalKind{
		gvk: resources.PrometheusRuleGVK, crdName: resources.PrometheusRuleCRDName,
		wanted: resources.PrometheusRuleEnabled, want: resources.PrometheusRule, name: resources.PrometheusRuleName,
		asks: "spec.metrics.prometheusRule.enabled is true", unasked: "spec.metrics.prometheusRule.enabled is false",
		provider: "the Prometheus Operator",
		instead: func(*v1alpha1.MQTTBroker) string {
			return "load config/prometheus/rules.yaml into Prometheus another way"
		},
		reason: v1alpha1.ReasonPrometheusRuleUnavailable, event: EventPrometheusRuleUnavailable,
	}
)

// optionalKinds are all the optional kinds: SetupWithManager watches their
// CRDs and starts a lazy watch on the objects of each.
var optionalKinds = []*optionalKind{&certificates, &serviceMonitors, &prometheusRules}

// optionalKindOf is the optional kind whose CRD is named crdName, or nil.
func optionalKindOf(crdName string) *optionalKind {
	for _, k := range optionalKinds {
		if k.crdName == crdName {
			return k
		}
	}
	return nil
}

// applyOptional is the step that writes the object of kind k where its
// CRD is installed, or deletes the one the operator made when the spec no
// longer asks for it. Where the CRD is not installed, a broker that asks
// for the object is Degraded (with a warning Event) but nothing fails:
// the CRD watch brings the broker back when the CRD is installed.
func (r *MQTTBrokerReconciler) applyOptional(k *optionalKind) func(context.Context, *pass) error {
	return func(ctx context.Context, p *pass) error {
		b := p.broker
		want := k.want(b)
		served, err := r.served(k.gvk)
		if err != nil {
			return err
		}
		if !served {
			if want != nil {
				msg := fmt.Sprintf("%s but the %s CRD (%s, %s) is not installed: install %s, or %s",
					k.asks, k.gvk.Kind, k.crdName, k.gvk.GroupVersion(), k.provider, k.instead(b))
				p.problem(k.reason, "%s", msg)
				r.event(b, nil, true, k.event, "Apply", "%s", msg)
			}
			return nil
		}
		if want != nil {
			if err := r.ownedWatches[k.gvk].ensure(); err != nil {
				return err
			}
			_, _, err := apply(ctx, r, b, want, k.newObject, mergeUnstructuredSpec)
			return err
		}
		cur := k.newObject()
		cur.SetName(k.name(b))
		cur.SetNamespace(b.Namespace)
		return r.deleteOwned(ctx, b, cur, k.gvk.Kind, k.unasked)
	}
}

func (k *optionalKind) newObject() *unstructured.Unstructured {
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

// mergeUnstructuredSpec rewrites the spec when a field the operator sets
// differs; fields the CRD's schema or its controller default are left
// alone (driftPaths with every map open).
func mergeUnstructuredSpec(cur, want *unstructured.Unstructured) {
	if len(driftPaths("spec", want.Object["spec"], cur.Object["spec"], driftOptions{allMapsOpen: true})) == 0 {
		return
	}
	cur.Object["spec"] = runtimeDeepCopy(want.Object["spec"])
}

// brokersWantingCRD maps an event on an optional kind's CRD to the
// brokers that ask for an object of that kind.
func (r *MQTTBrokerReconciler) brokersWantingCRD(ctx context.Context, crd client.Object) []reconcile.Request {
	k := optionalKindOf(crd.GetName())
	if k == nil {
		return nil
	}
	var list v1alpha1.MQTTBrokerList
	if err := r.Client.List(ctx, &list); err != nil {
		// A map function cannot retry; the cache-backed list fails only
		// while the cache stops.
		log.FromContext(ctx).Error(err, "listing MQTTBrokers for a CRD event", "crd", crd.GetName())
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		if k.wanted(&list.Items[i]) {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
	}
	return reqs
}
