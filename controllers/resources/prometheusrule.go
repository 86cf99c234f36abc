package resources

import (
	"fmt"
	"maps"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/bollard-io/bollard/api/v1alpha1"
)

// PrometheusRuleGVK is the Prometheus Operator's PrometheusRule, built as
// unstructured like the ServiceMonitor and created only where its CRD is
// installed.
var PrometheusRuleGVK = schema.GroupVersionKind{Group: "monitoring.coreos.com", Version: "v1", Kind: "PrometheusRule"}

// PrometheusRuleCRDName names the PrometheusRule CRD, whose arrival the
// operator watches for.
const PrometheusRuleCRDName = "prometheusrules.monitoring.coreos.com"

// PrometheusRuleName names the PrometheusRule.
func PrometheusRuleName(b *v1alpha1.MQTTBroker) string { return b.Name }

// PrometheusRuleEnabled reports whether b wants a PrometheusRule.
func PrometheusRuleEnabled(b *v1alpha1.MQTTBroker) bool {
	return MetricsEnabled(b) && b.Spec.Metrics.PrometheusRule.Enabled
}

// BrokerSelector is the PromQL label matchers of b's series as Prometheus
// scrapes them through the ServiceMonitor: the Prometheus Operator labels
// them with the namespace and with job, the metrics Service's name.
func BrokerSelector(b *v1alpha1.MQTTBroker) string {
	return fmt.Sprintf("namespace=%q,job=%q", b.Namespace, MetricsServiceName(b))
}

// PrometheusRule holds the alerting rules (AlertRules) for b's series, or
// is nil when spec.metrics.prometheusRule.enabled (or
// spec.metrics.enabled) is false.
func PrometheusRule(b *v1alpha1.MQTTBroker) *unstructured.Unstructured {
	if !PrometheusRuleEnabled(b) {
		return nil
	}
	labels := maps.Clone(b.Spec.Metrics.PrometheusRule.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, Labels(b))
	u := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{"groups": groupsObject(AlertRules(BrokerSelector(b)))}}}
	u.SetGroupVersionKind(PrometheusRuleGVK)
	meta := objectMeta(b, PrometheusRuleName(b))
	u.SetName(meta.Name)
	u.SetNamespace(meta.Namespace)
	u.SetLabels(labels)
	u.SetOwnerReferences(meta.OwnerReferences)
	return u
}

// groupsObject turns rule groups into the values of an unstructured
// object.
func groupsObject(groups []RuleGroup) []any {
	out := make([]any, 0, len(groups))
	for _, g := range groups {
		rules := make([]any, 0, len(g.Rules))
		for _, r := range g.Rules {
			m := map[string]any{"alert": r.Alert, "expr": r.Expr, "labels": anyMap(r.Labels), "annotations": anyMap(r.Annotations)}
			if r.For != "" {
				m["for"] = r.For
			}
			rules = append(rules, m)
		}
		out = append(out, map[string]any{"name": g.Name, "rules": rules})
	}
	return out
}

func anyMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
