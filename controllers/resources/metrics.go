package resources

import (
	"maps"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/bollard-io/bollard/api/v1alpha1"
)

// ServiceMonitorGVK is the Prometheus Operator's ServiceMonitor. The
// operator builds it as unstructured, so it depends on no Prometheus
// Operator code, and creates it only where its CRD is installed.
var ServiceMonitorGVK = schema.GroupVersionKind{Group: "monitoring.coreos.com", Version: "v1", Kind: "ServiceMonitor"}

// ServiceMonitorCRDName names the ServiceMonitor CRD, whose arrival the
// operator watches for.
const ServiceMonitorCRDName = "servicemonitors.monitoring.coreos.com"

// PortMetrics names the metrics Service's port.
const PortMetrics = "metrics"

// metricsComponent is the component label of the metrics Service, which
// the ServiceMonitor selects (the other Services share the broker's).
const metricsComponent = "metrics"

// MetricsServiceName names the metrics Service.
func MetricsServiceName(b *v1alpha1.MQTTBroker) string { return b.Name + "-metrics" }

// ServiceMonitorName names the ServiceMonitor.
func ServiceMonitorName(b *v1alpha1.MQTTBroker) string { return b.Name }

// MetricsEnabled reports whether b wants the metrics Service.
func MetricsEnabled(b *v1alpha1.MQTTBroker) bool {
	return b.Spec.Metrics.Enabled == nil || *b.Spec.Metrics.Enabled
}

// ServiceMonitorEnabled reports whether b wants a ServiceMonitor.
func ServiceMonitorEnabled(b *v1alpha1.MQTTBroker) bool {
	return MetricsEnabled(b) && b.Spec.Metrics.ServiceMonitor.Enabled
}

func metricsLabels(b *v1alpha1.MQTTBroker) map[string]string {
	l := Labels(b)
	l[LabelComponent] = metricsComponent
	return l
}

// MetricsService exposes the broker's admin endpoint, where Prometheus
// scrapes /metrics, or returns nil when spec.metrics.enabled is false (the
// reconciler then deletes any it made before). It selects every broker
// pod, ready or not: a recovering broker's metrics matter most.
func MetricsService(b *v1alpha1.MQTTBroker) *corev1.Service {
	if !MetricsEnabled(b) {
		return nil
	}
	svc := &corev1.Service{
		ObjectMeta: objectMeta(b, MetricsServiceName(b)),
		Spec: corev1.ServiceSpec{
			Type:                     corev1.ServiceTypeClusterIP,
			PublishNotReadyAddresses: true,
			Selector:                 SelectorLabels(b),
			Ports: []corev1.ServicePort{{
				Name: PortMetrics, Protocol: corev1.ProtocolTCP,
				Port: v1alpha1.AdminPort, TargetPort: intstr.FromString(PortAdmin),
			}},
		},
	}
	svc.Labels = metricsLabels(b)
	return svc
}

// ServiceMonitor tells the Prometheus Operator to scrape the metrics
// Service, or returns nil when spec.metrics.serviceMonitor.enabled (or
// spec.metrics.enabled) is false.
func ServiceMonitor(b *v1alpha1.MQTTBroker) *unstructured.Unstructured {
	if !ServiceMonitorEnabled(b) {
		return nil
	}
	sm := b.Spec.Metrics.ServiceMonitor
	interval := sm.Interval
	if interval == "" {
		interval = "30s"
	}
	labels := maps.Clone(sm.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, Labels(b))
	selector := map[string]any{}
	for k, v := range metricsLabels(b) {
		selector[k] = v
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"spec": map[string]any{
			"selector":          map[string]any{"matchLabels": selector},
			"namespaceSelector": map[string]any{"matchNames": []any{b.Namespace}},
			"endpoints": []any{map[string]any{
				"port":     PortMetrics,
				"path":     "/metrics",
				"scheme":   "http",
				"interval": interval,
			}},
		},
	}}
	u.SetGroupVersionKind(ServiceMonitorGVK)
	meta := objectMeta(b, ServiceMonitorName(b))
	u.SetName(meta.Name)
	u.SetNamespace(meta.Namespace)
	u.SetLabels(labels)
	u.SetOwnerReferences(meta.OwnerReferences)
	return u
}
