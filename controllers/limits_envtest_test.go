//go:build envtest

package controllers_test

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/controllers"
	"github.com/bollard-io/bollard/controllers/resources"
)

// TestHotLimitsOnlyTouchConfigMap: the session, retained-message and login
// limits are hot in broker/config, so changing them updates the ConfigMap
// and leaves the StatefulSet, its pod template and so the running pod
// alone.
func TestHotLimitsOnlyTouchConfigMap(t *testing.T) {
	ns := namespace(t)
	b := observed(t, create(t, newBroker(ns, "hot-limits")))
	before := statefulSet(t, b)

	update(t, b, func(b *v1alpha1.MQTTBroker) {
		b.Spec.Sessions.MaxSessions = ptr.To(int32(7))
		b.Spec.Limits.MaxRetainedBytes = ptr.To(resource.MustParse("1Mi"))
		b.Spec.Auth.Login.FailureBackoff = &metav1.Duration{Duration: 5 * time.Second}
	})
	b = observed(t, b)
	c := brokerConfig(t, b)
	if c.Sessions.MaxSessions != 7 || c.Limits.MaxRetainedBytes != 1<<20 || c.Login.FailureBackoff.D() != 5*time.Second ||
		c.ConfigGeneration != b.Generation {
		t.Errorf("ConfigMap not updated: maxSessions %d, maxRetainedBytes %d, failureBackoff %s, generation %d (want %d)",
			c.Sessions.MaxSessions, c.Limits.MaxRetainedBytes, c.Login.FailureBackoff, c.ConfigGeneration, b.Generation)
	}
	after := statefulSet(t, b)
	if after.ResourceVersion != before.ResourceVersion {
		t.Errorf("a hot change updated the StatefulSet (resourceVersion %s -> %s)", before.ResourceVersion, after.ResourceVersion)
	}
	if h0, h1 := before.Annotations[resources.TemplateHashAnnotation], after.Annotations[resources.TemplateHashAnnotation]; h0 != h1 {
		t.Errorf("a hot change changed the pod template hash %s -> %s", h0, h1)
	}
	if !equality.Semantic.DeepEqual(before.Spec.Template, after.Spec.Template) {
		t.Errorf("a hot change changed the pod template: config-hash %s -> %s",
			before.Spec.Template.Annotations[resources.ConfigHashAnnotation], after.Spec.Template.Annotations[resources.ConfigHashAnnotation])
	}
	noEvent(t, b, controllers.EventRestarted)
}

// TestLimitTheBrokerRefusesIsReported: the CRD bounds the new limits only
// loosely (at least 0); a value the broker's own rules refuse is reported
// (Degraded, reason InvalidConfig, naming the broker's field) and the
// ConfigMap keeps the previous configuration.
func TestLimitTheBrokerRefusesIsReported(t *testing.T) {
	ns := namespace(t)
	b := observed(t, create(t, newBroker(ns, "refused-limit")))
	gen0 := brokerConfig(t, b).ConfigGeneration

	update(t, b, func(b *v1alpha1.MQTTBroker) { b.Spec.Limits.MaxTopicLength = ptr.To(int32(8)) })
	b = observed(t, b)
	condition(t, b, v1alpha1.ConditionDegraded, metav1.ConditionTrue, v1alpha1.ReasonInvalidConfig)
	hasEvent(t, b, controllers.EventInvalidConfig, "limits.maxTopicLength")
	if c := brokerConfig(t, b); c.ConfigGeneration != gen0 || c.Limits.MaxTopicLength == 8 {
		t.Errorf("the refused config reached the ConfigMap: generation %d (want %d), maxTopicLength %d",
			c.ConfigGeneration, gen0, c.Limits.MaxTopicLength)
	}

	update(t, b, func(b *v1alpha1.MQTTBroker) { b.Spec.Limits.MaxTopicLength = ptr.To(int32(256)) })
	b = observed(t, b)
	condition(t, b, v1alpha1.ConditionDegraded, metav1.ConditionFalse, v1alpha1.ReasonAsExpected)
	if c := brokerConfig(t, b); c.Limits.MaxTopicLength != 256 {
		t.Errorf("maxTopicLength = %d after the fix, want 256", c.Limits.MaxTopicLength)
	}
}
