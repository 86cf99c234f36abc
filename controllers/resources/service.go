package resources

import (
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/bollard-io/bollard/api/v1alpha1"
)

// listenerPorts are the client-facing ports of the enabled listeners, in a
// fixed order (mqtt, mqtts, ws).
func listenerPorts(b *v1alpha1.MQTTBroker) []corev1.ServicePort {
	l := b.Spec.Listeners
	var ports []corev1.ServicePort
	if mqttEnabled(b) {
		ports = append(ports, servicePort(PortMQTT, int32(l.MQTT.Port)))
	}
	if l.TLS != nil {
		ports = append(ports, servicePort(PortTLS, int32(l.TLS.Port)))
	}
	if l.WebSocket != nil {
		ports = append(ports, servicePort(PortWebSocket, int32(l.WebSocket.Port)))
	}
	return ports
}

func servicePort(name string, port int32) corev1.ServicePort {
	return corev1.ServicePort{
		Name:       name,
		Protocol:   corev1.ProtocolTCP,
		Port:       port,
		TargetPort: intstr.FromString(name),
	}
}

// Service is the client Service: the listeners only, never the admin port.
// loadBalancerSourceRanges apply to a LoadBalancer and the external
// traffic policy to a NodePort or LoadBalancer Service only (the CRD
// refuses them otherwise; the apiserver would too).
func Service(b *v1alpha1.MQTTBroker) *corev1.Service {
	svc := &corev1.Service{
		ObjectMeta: objectMeta(b, ServiceName(b)),
		Spec: corev1.ServiceSpec{
			Type:     b.Spec.Service.Type,
			Selector: SelectorLabels(b),
			Ports:    listenerPorts(b),
		},
	}
	if svc.Spec.Type == "" {
		svc.Spec.Type = corev1.ServiceTypeClusterIP
	}
	if svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
		svc.Spec.LoadBalancerSourceRanges = slices.Clone(b.Spec.Service.LoadBalancerSourceRanges)
	}
	if svc.Spec.Type == corev1.ServiceTypeLoadBalancer || svc.Spec.Type == corev1.ServiceTypeNodePort {
		// Kubernetes' default, written out so that removing the field from
		// the spec puts it back.
		svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
		if p := b.Spec.Service.ExternalTrafficPolicy; p != "" {
			svc.Spec.ExternalTrafficPolicy = p
		}
	}
	if len(b.Spec.Service.Annotations) > 0 {
		svc.Annotations = maps.Clone(b.Spec.Service.Annotations)
	}
	return svc
}

// HeadlessService governs the StatefulSet: it gives each pod a stable DNS
// name and, publishing not-ready addresses, lets the operator reach a
// starting broker's admin port.
//
// A cluster's members reach each other on it (their replication port is
// published here, never on the client Service): publishing not-ready
// addresses matters there, since every member but the leader fails its
// readiness probe, and followers must still resolve each other to vote.
func HeadlessService(b *v1alpha1.MQTTBroker) *corev1.Service {
	ports := append(listenerPorts(b), servicePort(PortAdmin, v1alpha1.AdminPort))
	if Clustered(b) {
		ports = append(ports, servicePort(PortReplication, ReplicationPort))
	}
	return &corev1.Service{
		ObjectMeta: objectMeta(b, HeadlessServiceName(b)),
		Spec: corev1.ServiceSpec{
			Type:                     corev1.ServiceTypeClusterIP,
			ClusterIP:                corev1.ClusterIPNone,
			PublishNotReadyAddresses: true,
			Selector:                 SelectorLabels(b),
			Ports:                    ports,
		},
	}
}
