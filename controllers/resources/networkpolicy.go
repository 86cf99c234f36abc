package resources

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/bollard-io/bollard/api/v1alpha1"
)

// LabelNamespaceName is the label Kubernetes puts on every namespace,
// holding its name.
const LabelNamespaceName = "kubernetes.io/metadata.name"

// NetworkPolicyDefaults are the operator-wide NetworkPolicy settings (its
// command-line flags).
type NetworkPolicyDefaults struct {
	// Disabled turns NetworkPolicies off for every broker
	// (--network-policies=false).
	Disabled bool
	// OperatorNamespace is the namespace of the operator's pods, admitted
	// to the admin port so that the operator can ask for the status. ""
	// (the operator runs outside the cluster) admits no namespace for it.
	OperatorNamespace string
	// Prometheus is admitted to the admin port when the spec sets no
	// spec.networkPolicy.prometheus; the zero value means
	// DefaultPrometheusPeer.
	Prometheus v1alpha1.NetworkPolicyPeer
}

// DefaultPrometheusPeer admits pods labelled app.kubernetes.io/name=prometheus
// in any namespace (the label the Prometheus Operator gives its pods).
func DefaultPrometheusPeer() v1alpha1.NetworkPolicyPeer {
	return v1alpha1.NetworkPolicyPeer{
		NamespaceSelector: &metav1.LabelSelector{},
		PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{LabelName: "prometheus"}},
	}
}

// NetworkPolicy admits the MQTT listener ports from anywhere and the admin
// port only from the operator's namespace and Prometheus, and a cluster's
// replication port only from its members; every other
// ingress to the broker pods is denied (where the network plugin enforces
// NetworkPolicies). Egress is not restricted. It returns nil when
// spec.networkPolicy.enabled is false or the operator's defaults disable
// NetworkPolicies (the reconciler then deletes any it made before).
func NetworkPolicy(b *v1alpha1.MQTTBroker, d NetworkPolicyDefaults) *networkingv1.NetworkPolicy {
	s := b.Spec.NetworkPolicy
	if d.Disabled || (s.Enabled != nil && !*s.Enabled) {
		return nil
	}
	var rules []networkingv1.NetworkPolicyIngressRule
	if ports := listenerPorts(b); len(ports) > 0 {
		mqtt := networkingv1.NetworkPolicyIngressRule{} // no From: every source
		for _, p := range ports {
			mqtt.Ports = append(mqtt.Ports, tcpPort(p.Port))
		}
		rules = append(rules, mqtt)
	}
	rules = append(rules, networkingv1.NetworkPolicyIngressRule{
		Ports: []networkingv1.NetworkPolicyPort{tcpPort(v1alpha1.AdminPort)},
		From:  adminPeers(s, d),
	})
	if Clustered(b) {
		// The replication port from the other members only (they also
		// prove the cluster secret on every connection).
		rules = append(rules, networkingv1.NetworkPolicyIngressRule{
			Ports: []networkingv1.NetworkPolicyPort{tcpPort(ReplicationPort)},
			From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: SelectorLabels(b)}}},
		})
	}
	return &networkingv1.NetworkPolicy{
		ObjectMeta: objectMeta(b, NetworkPolicyName(b)),
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: SelectorLabels(b)},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress:     rules,
		},
	}
}

// adminPeers are the sources admitted to the admin port.
func adminPeers(s v1alpha1.NetworkPolicySpec, d NetworkPolicyDefaults) []networkingv1.NetworkPolicyPeer {
	var peers []networkingv1.NetworkPolicyPeer
	if d.OperatorNamespace != "" {
		peers = append(peers, networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{
			MatchLabels: map[string]string{LabelNamespaceName: d.OperatorNamespace},
		}})
	}
	prom := d.Prometheus
	if s.Prometheus != nil {
		prom = *s.Prometheus
	}
	if prom.NamespaceSelector == nil && prom.PodSelector == nil {
		prom = DefaultPrometheusPeer()
	}
	return append(peers, networkingv1.NetworkPolicyPeer{
		NamespaceSelector: prom.NamespaceSelector.DeepCopy(),
		PodSelector:       prom.PodSelector.DeepCopy(),
	})
}

func tcpPort(port int32) networkingv1.NetworkPolicyPort {
	return networkingv1.NetworkPolicyPort{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(port))}
}
