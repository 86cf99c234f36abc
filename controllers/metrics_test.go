//go:build envtest

package controllers_test

import (
	"errors"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
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

// serviceMonitorCRD is a minimal stand-in for the Prometheus Operator's
// CRD: the spec is free-form but for one defaulted field, as in the real
// one, which must not make the operator rewrite the ServiceMonitor.
func serviceMonitorCRD() *apiextensionsv1.CustomResourceDefinition {
	preserve := ptr.To(true)
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: resources.ServiceMonitorCRDName},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "monitoring.coreos.com",
			Names: apiextensionsv1.CustomResourceDefinitionNames{
				Plural: "servicemonitors", Singular: "servicemonitor", Kind: "ServiceMonitor", ListKind: "ServiceMonitorList",
			},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object",
					Properties: map[string]apiextensionsv1.JSONSchemaProps{
						"spec": {
							Type: "object", XPreserveUnknownFields: preserve,
							Properties: map[string]apiextensionsv1.JSONSchemaProps{
								"endpoints": {Type: "array", Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &apiextensionsv1.JSONSchemaProps{
									Type: "object", XPreserveUnknownFields: preserve,
									Properties: map[string]apiextensionsv1.JSONSchemaProps{
										"honorLabels": {Type: "boolean", Default: &apiextensionsv1.JSON{Raw: []byte("false")}},
									},
								}}},
							},
						},
					},
				}},
			}},
		},
	}
}

func getServiceMonitor(t *testing.T, b *v1alpha1.MQTTBroker) (*unstructured.Unstructured, error) {
	t.Helper()
	sm := &unstructured.Unstructured{}
	sm.SetGroupVersionKind(resources.ServiceMonitorGVK)
	return sm, get(t, sm, b.Namespace, resources.ServiceMonitorName(b))
}

// TestServiceMonitor: without the CRD, a broker asking for a ServiceMonitor
// is Degraded with a clear reason and nothing fails; once the CRD is
// installed the ServiceMonitor appears (the CRD watch), follows the spec,
// and goes when disabled. The metrics Service goes with metrics.enabled.
func TestServiceMonitor(t *testing.T) {
	ns := namespace(t)
	b := newBroker(ns, "monitored")
	b.Spec.Metrics.ServiceMonitor.Enabled = true
	b.Spec.Metrics.ServiceMonitor.Labels = map[string]string{"release": "prom"}
	b = observed(t, create(t, b))

	svc := &corev1.Service{}
	if err := get(t, svc, ns, resources.MetricsServiceName(b)); err != nil {
		t.Fatalf("metrics Service: %v", err)
	}
	if p := svc.Spec.Ports; len(p) != 1 || p[0].Name != "metrics" || p[0].Port != v1alpha1.AdminPort || p[0].TargetPort.StrVal != "admin" {
		t.Errorf("metrics Service ports = %+v, want metrics -> admin", p)
	}
	condition(t, b, v1alpha1.ConditionDegraded, metav1.ConditionTrue, v1alpha1.ReasonServiceMonitorUnavailable)
	hasEvent(t, b, controllers.EventServiceMonitorUnavailable, resources.ServiceMonitorCRDName)

	crd := serviceMonitorCRD()
	if _, err := envtest.InstallCRDs(restCfg, envtest.CRDInstallOptions{CRDs: []*apiextensionsv1.CustomResourceDefinition{crd}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := envtest.UninstallCRDs(restCfg, envtest.CRDInstallOptions{CRDs: []*apiextensionsv1.CustomResourceDefinition{crd}}); err != nil {
			t.Error(err)
		}
	})
	// Only the CRD watch can bring the broker back here.
	var sm *unstructured.Unstructured
	eventually(t, func() error {
		var err error
		sm, err = getServiceMonitor(t, b)
		return err
	})
	condition(t, b, v1alpha1.ConditionDegraded, metav1.ConditionFalse, v1alpha1.ReasonAsExpected)
	if sm.GetLabels()["release"] != "prom" {
		t.Errorf("ServiceMonitor labels = %v, want release=prom", sm.GetLabels())
	}
	eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	if len(eps) != 1 || fmt.Sprint(eps[0].(map[string]any)["port"]) != "metrics" {
		t.Errorf("ServiceMonitor endpoints = %v", eps)
	}
	hasEvent(t, b, controllers.EventCreated, "ServiceMonitor "+b.Name)

	// A spec change reaches it; the CRD's defaults cause no rewrites.
	update(t, b, func(b *v1alpha1.MQTTBroker) { b.Spec.Metrics.ServiceMonitor.Interval = "15s" })
	eventually(t, func() error {
		sm, err := getServiceMonitor(t, b)
		if err != nil {
			return err
		}
		eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
		if got := eps[0].(map[string]any)["interval"]; got != "15s" {
			return fmt.Errorf("interval = %v", got)
		}
		return nil
	})
	sm, _ = getServiceMonitor(t, b)
	rv := sm.GetResourceVersion()
	update(t, b, func(b *v1alpha1.MQTTBroker) { b.Spec.LogLevel = "debug" }) // one more reconcile
	observed(t, b)
	if sm, _ := getServiceMonitor(t, b); sm.GetResourceVersion() != rv {
		t.Errorf("an unrelated change rewrote the ServiceMonitor (resourceVersion %s -> %s)", rv, sm.GetResourceVersion())
	}

	// Deleted by hand, it comes back: the operator watches the ServiceMonitors it owns.
	if err := k8s.Delete(ctx, sm); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() error {
		again, err := getServiceMonitor(t, b)
		if err != nil {
			return err
		}
		if again.GetUID() == sm.GetUID() {
			return errors.New("still the deleted ServiceMonitor")
		}
		return nil
	})

	update(t, b, func(b *v1alpha1.MQTTBroker) { b.Spec.Metrics.ServiceMonitor.Enabled = false })
	eventually(t, func() error {
		if _, err := getServiceMonitor(t, b); !apierrors.IsNotFound(err) {
			return fmt.Errorf("ServiceMonitor still there: %w", err)
		}
		return nil
	})
	hasEvent(t, b, controllers.EventDeleted, "ServiceMonitor "+b.Name)

	update(t, b, func(b *v1alpha1.MQTTBroker) { b.Spec.Metrics.Enabled = ptr.To(false) })
	eventually(t, func() error {
		if err := get(t, &corev1.Service{}, ns, resources.MetricsServiceName(b)); !apierrors.IsNotFound(err) {
			return errors.Join(errors.New("metrics Service still there"), err)
		}
		return nil
	})
}
