//go:build envtest

package controllers_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/controllers"
	"github.com/bollard-io/bollard/controllers/resources"
)

// TestQueuePolicyAdmission: the apiserver refuses hostile or broken queue
// policies with a message that names the field (CEL rules, bounds).
func TestQueuePolicyAdmission(t *testing.T) {
	ns := namespace(t)
	ok := v1alpha1.QueuePolicy{Name: "ok", ClientID: "ok-*"}
	one := func(p v1alpha1.QueuePolicy) []v1alpha1.QueuePolicy { return []v1alpha1.QueuePolicy{ok, p} }
	many := make([]v1alpha1.QueuePolicy, 33)
	for i := range many {
		many[i] = v1alpha1.QueuePolicy{Name: fmt.Sprintf("p%d", i), ClientID: fmt.Sprintf("c%d-*", i)}
	}
	cases := map[string]struct {
		policies []v1alpha1.QueuePolicy
		want     []string
	}{
		"too many": {many, []string{"spec.queues.policies", "must have at most 32 items"}},
		"duplicate name": {one(v1alpha1.QueuePolicy{Name: "ok", ClientID: "x"}),
			[]string{"spec.queues.policies", "every policy needs a name of its own"}},
		"no selector": {one(v1alpha1.QueuePolicy{Name: "all", MaxQueuedMessages: ptr.To(int64(5))}),
			[]string{"spec.queues.policies[1]", "at least one of clientID, principal or topicFilter"}},
		"reserved name": {one(v1alpha1.QueuePolicy{Name: "default", ClientID: "x"}),
			[]string{"spec.queues.policies[1].name", `"default" is reserved`}},
		"upper-case name": {one(v1alpha1.QueuePolicy{Name: "Sensors", ClientID: "x"}),
			[]string{"spec.queues.policies[1].name", "lowercase DNS label"}},
		"long name": {one(v1alpha1.QueuePolicy{Name: strings.Repeat("a", 64), ClientID: "x"}),
			[]string{"spec.queues.policies[1].name", "may not be more than 63"}},
		"question mark": {one(v1alpha1.QueuePolicy{Name: "q", ClientID: "dev-?"}),
			[]string{"spec.queues.policies[1].clientID", "only '*' is a wildcard"}},
		"backslash in principal": {one(v1alpha1.QueuePolicy{Name: "q", Principal: `a\*`}),
			[]string{"spec.queues.policies[1].principal", "only '*' is a wildcard"}},
		"control character": {one(v1alpha1.QueuePolicy{Name: "q", ClientID: "a\nb"}),
			[]string{"spec.queues.policies[1].clientID", "control characters"}},
		"giant pattern": {one(v1alpha1.QueuePolicy{Name: "q", ClientID: strings.Repeat("*a", 5000)}),
			[]string{"spec.queues.policies[1].clientID", "may not be more than 256"}},
		"bad filter": {one(v1alpha1.QueuePolicy{Name: "q", TopicFilter: "fw/#/x"}),
			[]string{"spec.queues.policies[1].topicFilter", "MQTT topic filter"}},
		"shared filter": {one(v1alpha1.QueuePolicy{Name: "q", TopicFilter: "$share/g/fw/#"}),
			[]string{"spec.queues.policies[1].topicFilter", "inner filter"}},
		"zero messages": {one(v1alpha1.QueuePolicy{Name: "q", ClientID: "x", MaxQueuedMessages: ptr.To(int64(0))}),
			[]string{"spec.queues.policies[1].maxQueuedMessages"}},
		"bad overflow": {one(v1alpha1.QueuePolicy{Name: "q", ClientID: "x", OverflowPolicy: "DropAll"}),
			[]string{"spec.queues.policies[1].overflowPolicy"}},
		"negative expiry": {one(v1alpha1.QueuePolicy{Name: "q", ClientID: "x", MaxSessionExpiry: &metav1.Duration{Duration: -time.Second}}),
			[]string{"spec.queues.policies[1].maxSessionExpiry", "between 0s and 4294967294s"}},
		"share over 100": {one(v1alpha1.QueuePolicy{Name: "q", ClientID: "x", StoreBudgetPercent: ptr.To(int32(101))}),
			[]string{"spec.queues.policies[1].storeBudgetPercent"}},
		"zero share": {one(v1alpha1.QueuePolicy{Name: "q", ClientID: "x", StoreBudgetPercent: ptr.To(int32(0))}),
			[]string{"spec.queues.policies[1].storeBudgetPercent"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			b := newBroker(ns, "policies")
			b.Spec.Queues.Policies = tc.policies
			err := k8s.Create(ctx, b)
			if !apierrors.IsInvalid(err) {
				t.Fatalf("create: err = %v, want Invalid", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestQueuePoliciesAreHot: the device-fleet sample's policies reach the
// ConfigMap; changing them updates only the ConfigMap (the broker reloads
// it), never the StatefulSet or its pod template.
func TestQueuePoliciesAreHot(t *testing.T) {
	ns := namespace(t)
	b := &v1alpha1.MQTTBroker{}
	readYAML(t, filepath.Join("..", "config", "samples", "mqtt_v1alpha1_mqttbroker_devicefleet.yaml"), b)
	b.Namespace = ns
	b = observed(t, create(t, b))
	c := brokerConfig(t, b)
	var names []string
	for _, p := range c.Queues.Policies {
		names = append(names, p.Name)
	}
	if strings.Join(names, ",") != "sensors,actuators,firmware" {
		t.Fatalf("rendered policies %v", names)
	}
	if e := c.Effective(0); e.MaxQueuedMessages != 500 || e.StoreBudget != c.Queues.MaxStoreBytes/100*20 {
		t.Errorf("sensors rendered as %+v", e)
	}
	before := statefulSet(t, b)

	update(t, b, func(b *v1alpha1.MQTTBroker) {
		b.Spec.Queues.Policies[0].MaxQueuedMessages = ptr.To(int64(100))
		b.Spec.Queues.Policies[1].OverflowPolicy = v1alpha1.OverflowDropNewest
		b.Spec.Queues.Policies = append(b.Spec.Queues.Policies, v1alpha1.QueuePolicy{Name: "meters", Principal: "meter-*"})
	})
	b = observed(t, b)
	c = brokerConfig(t, b)
	if c.ConfigGeneration != b.Generation || len(c.Queues.Policies) != 4 || *c.Queues.Policies[0].MaxQueuedMessages != 100 ||
		c.Queues.Policies[1].OverflowPolicy != v1alpha1.OverflowDropNewest || c.Queues.Policies[3].Principal != "meter-*" {
		t.Errorf("ConfigMap not updated: generation %d (want %d), policies %+v", c.ConfigGeneration, b.Generation, c.Queues.Policies)
	}
	after := statefulSet(t, b)
	if after.ResourceVersion != before.ResourceVersion || !equality.Semantic.DeepEqual(before.Spec.Template, after.Spec.Template) {
		t.Errorf("a policy change touched the StatefulSet (resourceVersion %s -> %s, config-hash %s -> %s)",
			before.ResourceVersion, after.ResourceVersion,
			before.Spec.Template.Annotations[resources.ConfigHashAnnotation], after.Spec.Template.Annotations[resources.ConfigHashAnnotation])
	}
	noEvent(t, b, controllers.EventRestarted)
}

// TestQueuePolicyTheBrokerRefusesIsReported: a policy the CRD lets
// through but the broker's rules refuse (one definition, broker/config) is
// reported (Degraded, InvalidConfig, naming the broker's field) and never
// rendered: the ConfigMap keeps the previous configuration.
func TestQueuePolicyTheBrokerRefusesIsReported(t *testing.T) {
	ns := namespace(t)
	b := newBroker(ns, "refused-policy")
	b.Spec.Queues.Policies = []v1alpha1.QueuePolicy{{Name: "sensors", ClientID: "sensor-*", MaxQueuedMessages: ptr.To(int64(50))}}
	b = observed(t, create(t, b))
	gen0 := brokerConfig(t, b).ConfigGeneration

	update(t, b, func(b *v1alpha1.MQTTBroker) {
		b.Spec.Queues.Policies = append(b.Spec.Queues.Policies, v1alpha1.QueuePolicy{Name: "short", ClientID: "short-*",
			MaxSessionExpiry: &metav1.Duration{Duration: 1500 * time.Millisecond}})
	})
	b = observed(t, b)
	condition(t, b, v1alpha1.ConditionDegraded, metav1.ConditionTrue, v1alpha1.ReasonInvalidConfig)
	hasEvent(t, b, controllers.EventInvalidConfig, "queues.policies[1].maxSessionExpiry")
	if c := brokerConfig(t, b); c.ConfigGeneration != gen0 || len(c.Queues.Policies) != 1 {
		t.Errorf("the refused config reached the ConfigMap: generation %d (want %d), %d policies", c.ConfigGeneration, gen0, len(c.Queues.Policies))
	}

	// A byte budget the broker refuses (the CRD cannot bound a quantity
	// inside the list: see QueuePolicy.MaxQueuedBytes) is refused the same way.
	update(t, b, func(b *v1alpha1.MQTTBroker) {
		b.Spec.Queues.Policies[1].MaxSessionExpiry = &metav1.Duration{Duration: 2 * time.Second}
		b.Spec.Queues.Policies[0].MaxQueuedBytes = ptr.To(resource.MustParse("0"))
	})
	b = observed(t, b)
	condition(t, b, v1alpha1.ConditionDegraded, metav1.ConditionTrue, v1alpha1.ReasonInvalidConfig)
	hasEvent(t, b, controllers.EventInvalidConfig, "queues.policies[0].maxQueuedBytes")
	if c := brokerConfig(t, b); c.ConfigGeneration != gen0 {
		t.Errorf("the refused config reached the ConfigMap: generation %d (want %d)", c.ConfigGeneration, gen0)
	}

	update(t, b, func(b *v1alpha1.MQTTBroker) {
		b.Spec.Queues.Policies[0].MaxQueuedBytes = ptr.To(resource.MustParse("1Mi"))
	})
	b = observed(t, b)
	condition(t, b, v1alpha1.ConditionDegraded, metav1.ConditionFalse, v1alpha1.ReasonAsExpected)
	if c := brokerConfig(t, b); len(c.Queues.Policies) != 2 || c.Queues.Policies[1].MaxSessionExpiry.D() != 2*time.Second {
		t.Errorf("policies after the fix %+v", c.Queues.Policies)
	}
}
