package controllers

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/controllers/resources"
)

// +kubebuilder:rbac:groups=cert-manager.io,resources=certificates,verbs=get;list;watch;create;update;patch;delete

// applyCertificate asks cert-manager for the TLS listener's certificate
// (spec.listeners.tls.issuerRef) where its CRD is installed. Where it is
// not, a broker that asks for one is Degraded (with a warning Event) but
// nothing fails: the CRD watch brings the broker back when cert-manager is
// installed. Without issuerRef, a Certificate the operator made is deleted.
func (r *MQTTBrokerReconciler) applyCertificate(ctx context.Context, p *pass) error {
	b := p.broker
	want := resources.Certificate(b)
	served, err := r.kindServed(resources.CertificateGVK)
	if err != nil {
		return err
	}
	if !served {
		if want != nil {
			msg := fmt.Sprintf("spec.listeners.tls.issuerRef is set but cert-manager's Certificate CRD (%s, %s) is not installed: "+
				"install cert-manager, or create the kubernetes.io/tls Secret %s yourself and drop issuerRef",
				resources.CertificateCRDName, resources.CertificateGVK.GroupVersion(), resources.TLSSecretName(b))
			p.problem(v1alpha1.ReasonCertManagerUnavailable, "%s", msg)
			r.event(b, nil, true, EventCertManagerUnavailable, "Apply", "%s", msg)
		}
		return nil
	}
	if want != nil {
		if err := r.certificateWatch.ensure(); err != nil {
			return err
		}
		_, _, err := apply(ctx, r, b, want, newCertificate, mergeUnstructuredSpec)
		return err
	}
	cur := newCertificate()
	cur.SetName(resources.CertificateName(b))
	cur.SetNamespace(b.Namespace)
	return r.deleteOwned(ctx, b, cur, "Certificate", "spec.listeners.tls.issuerRef is not set")
}

// kindServed asks the RESTMapper whether the apiserver serves gvk. The
// manager's mapper discovers a group it does not know on demand, so a CRD
// installed after the operator started is found.
func (r *MQTTBrokerReconciler) kindServed(gvk schema.GroupVersionKind) (bool, error) {
	_, err := r.Client.RESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version)
	switch {
	case meta.IsNoMatchError(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("discovering %s: %w", gvk.GroupKind(), err)
	}
	return true, nil
}

func newCertificate() *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(resources.CertificateGVK)
	return u
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

// brokersWantingCertificates maps an event on the Certificate CRD to the
// brokers that ask cert-manager for a certificate.
func (r *MQTTBrokerReconciler) brokersWantingCertificates(ctx context.Context, _ client.Object) []reconcile.Request {
	var list v1alpha1.MQTTBrokerList
	if err := r.Client.List(ctx, &list); err != nil {
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		if resources.CertificateWanted(&list.Items[i]) {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
	}
	return reqs
}
