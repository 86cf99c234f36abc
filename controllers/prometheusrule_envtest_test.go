//go:build envtest

package controllers_test

import (
	"fmt"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/controllers"
	"github.com/bollard-io/bollard/controllers/resources"
)

// prometheusRuleCRD is a minimal stand-in for the Prometheus Operator's
// CRD (a free-form spec).
func prometheusRuleCRD() *apiextensionsv1.CustomResourceDefinition {
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: resources.PrometheusRuleCRDName},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "monitoring.coreos.com",
			Names: apiextensionsv1.CustomResourceDefinitionNames{
				Plural: "prometheusrules", Singular: "prometheusrule", Kind: "PrometheusRule", ListKind: "PrometheusRuleList",
			},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type:       "object",
					Properties: map[string]apiextensionsv1.JSONSchemaProps{"spec": {Type: "object", XPreserveUnknownFields: ptr.To(true)}},
				}},
			}},
		},
	}
}

func getPrometheusRule(t *testing.T, b *v1alpha1.MQTTBroker) (*unstructured.Unstructured, error) {
	t.Helper()
	pr := &unstructured.Unstructured{}
	pr.SetGroupVersionKind(resources.PrometheusRuleGVK)
	return pr, get(t, pr, b.Namespace, resources.PrometheusRuleName(b))
}

// TestPrometheusRule: without the CRD, a broker asking for a
// PrometheusRule is Degraded with a clear reason; once the CRD is
// installed the PrometheusRule appears with alerts limited to this
// broker's series, and goes when disabled.
func TestPrometheusRule(t *testing.T) {
	ns := namespace(t)
	b := newBroker(ns, "alerted")
	b.Spec.Metrics.PrometheusRule.Enabled = true
	b.Spec.Metrics.PrometheusRule.Labels = map[string]string{"release": "prom"}
	b = observed(t, create(t, b))
	condition(t, b, v1alpha1.ConditionDegraded, metav1.ConditionTrue, v1alpha1.ReasonPrometheusRuleUnavailable)
	hasEvent(t, b, controllers.EventPrometheusRuleUnavailable, resources.PrometheusRuleCRDName)

	crd := prometheusRuleCRD()
	if _, err := envtest.InstallCRDs(restCfg, envtest.CRDInstallOptions{CRDs: []*apiextensionsv1.CustomResourceDefinition{crd}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := envtest.UninstallCRDs(restCfg, envtest.CRDInstallOptions{CRDs: []*apiextensionsv1.CustomResourceDefinition{crd}}); err != nil {
			t.Error(err)
		}
	})
	// Only the CRD watch can bring the broker back here.
	var pr *unstructured.Unstructured
	eventually(t, func() error {
		var err error
		pr, err = getPrometheusRule(t, b)
		return err
	})
	condition(t, b, v1alpha1.ConditionDegraded, metav1.ConditionFalse, v1alpha1.ReasonAsExpected)
	if pr.GetLabels()["release"] != "prom" {
		t.Errorf("labels = %v, want release=prom", pr.GetLabels())
	}
	groups, _, _ := unstructured.NestedSlice(pr.Object, "spec", "groups")
	if len(groups) != 1 {
		t.Fatalf("groups = %v", groups)
	}
	rules, _ := groups[0].(map[string]any)["rules"].([]any)
	want := fmt.Sprintf(`namespace=%q,job="alerted-metrics"`, ns)
	for _, r := range rules {
		expr := fmt.Sprint(r.(map[string]any)["expr"])
		if !strings.Contains(expr, want) {
			t.Errorf("%v: expr %q does not select %s", r.(map[string]any)["alert"], expr, want)
		}
	}
	if len(rules) != len(resources.AlertRules("")[0].Rules) {
		t.Errorf("%d rules", len(rules))
	}
	hasEvent(t, b, controllers.EventCreated, "PrometheusRule "+b.Name)

	update(t, b, func(b *v1alpha1.MQTTBroker) { b.Spec.Metrics.PrometheusRule.Enabled = false })
	eventually(t, func() error {
		if _, err := getPrometheusRule(t, b); !apierrors.IsNotFound(err) {
			return fmt.Errorf("PrometheusRule still there: %w", err)
		}
		return nil
	})
	hasEvent(t, b, controllers.EventDeleted, "PrometheusRule "+b.Name)
}
