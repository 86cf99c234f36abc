package resources

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"

	"github.com/bollard-io/bollard/api/v1alpha1"
)

// CertificateGVK is cert-manager's Certificate. The operator builds it as
// unstructured, so it depends on no cert-manager code, and creates it only
// where its CRD is installed.
var CertificateGVK = schema.GroupVersionKind{Group: "cert-manager.io", Version: "v1", Kind: "Certificate"}

// CertificateCRDName names the Certificate CRD, whose arrival the operator
// watches for.
const CertificateCRDName = "certificates.cert-manager.io"

// CertificateName names the Certificate the operator asks cert-manager for.
func CertificateName(b *v1alpha1.MQTTBroker) string { return b.Name + "-tls" }

// TLSSecretName is the Secret the TLS listener serves its certificate
// from: spec.listeners.tls.secretName, or, when cert-manager issues the
// certificate (issuerRef) and no name is given, <name>-tls. "" without a
// TLS listener.
func TLSSecretName(b *v1alpha1.MQTTBroker) string {
	t := b.Spec.Listeners.TLS
	switch {
	case t == nil:
		return ""
	case t.SecretName != "":
		return t.SecretName
	case t.IssuerRef != nil:
		return b.Name + "-tls"
	}
	return ""
}

// CertificateWanted reports whether b asks cert-manager for its
// certificate.
func CertificateWanted(b *v1alpha1.MQTTBroker) bool {
	t := b.Spec.Listeners.TLS
	return t != nil && t.IssuerRef != nil
}

// CertificateDNSNames are the names the certificate is issued for: the
// client Service in every form a client in the cluster may use, each
// broker pod behind the headless Service (how a client reaches one
// replica), and the spec's extra dnsNames, without duplicates. The
// cluster domain is assumed to be cluster.local for the fully qualified
// forms; the shorter forms work in any cluster.
func CertificateDNSNames(b *v1alpha1.MQTTBroker) []string {
	ns := b.Namespace
	svc, headless := ServiceName(b), HeadlessServiceName(b)
	names := []string{
		svc,
		svc + "." + ns,
		svc + "." + ns + ".svc",
		svc + "." + ns + ".svc.cluster.local",
		headless + "." + ns + ".svc",
	}
	for i := range int(ptr.Deref(b.Spec.Replicas, 1)) {
		names = append(names, fmt.Sprintf("%s-%d.%s.%s.svc", StatefulSetName(b), i, headless, ns))
	}
	if t := b.Spec.Listeners.TLS; t != nil {
		names = append(names, t.DNSNames...)
	}
	seen := make(map[string]bool, len(names))
	out := names[:0]
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

// Certificate asks cert-manager to issue the TLS listener's certificate
// into TLSSecretName, or returns nil when b does not set
// spec.listeners.tls.issuerRef (the reconciler then deletes any it made
// before). The key is rotated on every renewal (cert-manager's default
// since v1.18, stated here so that older releases do the same); the broker
// reloads the renewed files without a restart.
func Certificate(b *v1alpha1.MQTTBroker) *unstructured.Unstructured {
	if !CertificateWanted(b) {
		return nil
	}
	ref := b.Spec.Listeners.TLS.IssuerRef
	kind, group := ref.Kind, ref.Group
	if kind == "" {
		kind = v1alpha1.IssuerKindIssuer
	}
	if group == "" {
		group = CertificateGVK.Group
	}
	dns := CertificateDNSNames(b)
	dnsNames := make([]any, len(dns))
	for i, n := range dns {
		dnsNames[i] = n
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"spec": map[string]any{
			"secretName": TLSSecretName(b),
			"commonName": dns[0],
			"dnsNames":   dnsNames,
			"issuerRef":  map[string]any{"name": ref.Name, "kind": kind, "group": group},
			"privateKey": map[string]any{"rotationPolicy": "Always"},
		},
	}}
	u.SetGroupVersionKind(CertificateGVK)
	meta := objectMeta(b, CertificateName(b))
	u.SetName(meta.Name)
	u.SetNamespace(meta.Namespace)
	u.SetLabels(meta.Labels)
	u.SetOwnerReferences(meta.OwnerReferences)
	return u
}
