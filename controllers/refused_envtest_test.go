//go:build envtest

package controllers_test

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/broker/access/accesstest"
	"github.com/bollard-io/bollard/controllers"
)

// TestRefusedConfigIsNotApplied: a broker that refuses the current
// generation (it says so on /v1/status) makes ConfigApplied False with
// reason ConfigRefused and the broker's message, with one Warning Event;
// applying a later generation makes it True again.
func TestRefusedConfigIsNotApplied(t *testing.T) {
	ns := namespace(t)
	b := observed(t, create(t, newBroker(ns, "refused")))
	pod := markRunning(t, b)
	brokers.set(ns, pod.Name, controllers.BrokerStatus{ConfigGeneration: b.Generation})
	condition(t, b, v1alpha1.ConditionConfigApplied, metav1.ConditionTrue, v1alpha1.ReasonConfigCurrent)

	update(t, b, func(b *v1alpha1.MQTTBroker) {
		b.Spec.Auth.ACL = []v1alpha1.ACLRule{{User: "*", Topic: "#", Access: "readwrite"}}
	})
	b = observed(t, b)
	const brokerErr = "engine: auth: invalid users file: line 3 has an empty username"
	brokers.set(ns, pod.Name, controllers.BrokerStatus{ConfigGeneration: b.Generation - 1,
		RefusedConfigGeneration: b.Generation, RefusedConfigError: brokerErr, LastReloadError: brokerErr})
	condition(t, b, v1alpha1.ConditionConfigApplied, metav1.ConditionFalse, v1alpha1.ReasonConfigRefused)
	cur := &v1alpha1.MQTTBroker{}
	if err := get(t, cur, ns, b.Name); err != nil {
		t.Fatal(err)
	}
	c := meta.FindStatusCondition(cur.Status.Conditions, v1alpha1.ConditionConfigApplied)
	if !strings.Contains(c.Message, brokerErr) || c.ObservedGeneration != b.Generation {
		t.Errorf("ConfigApplied = %+v, want the broker's error for generation %d", c, b.Generation)
	}
	if cur.Status.AppliedConfigGeneration != b.Generation-1 {
		t.Errorf("appliedConfigGeneration = %d, want the previous %d", cur.Status.AppliedConfigGeneration, b.Generation-1)
	}
	hasEvent(t, b, controllers.EventConfigRefused, brokerErr)

	brokers.set(ns, pod.Name, controllers.BrokerStatus{ConfigGeneration: b.Generation})
	condition(t, b, v1alpha1.ConditionConfigApplied, metav1.ConditionTrue, v1alpha1.ReasonConfigCurrent)
}

// TestAdmissionAcceptsEveryValidRule: the CRD's rules are not stricter
// than the broker's: every rule of the shared table of ACL meanings (all
// valid for broker/access) is accepted at admission.
func TestAdmissionAcceptsEveryValidRule(t *testing.T) {
	ns := namespace(t)
	b := newBroker(ns, "rules")
	for _, tc := range accesstest.Cases() {
		for _, r := range tc.Rules {
			if err := r.Validate(); err != nil {
				t.Fatalf("table rule %+v: %v", r, err)
			}
			b.Spec.Auth.ACL = append(b.Spec.Auth.ACL, v1alpha1.ACLRule{User: r.User, Topic: r.Topic, Access: string(r.Kind)})
		}
	}
	b.Spec.Auth.ACL = append(b.Spec.Auth.ACL,
		v1alpha1.ACLRule{User: "dev-%c", Topic: "/", Access: "publish"},
		v1alpha1.ACLRule{User: "*", Topic: "a/%u-%c/+/#", Access: "readwrite"},
		v1alpha1.ACLRule{Topic: "+", Access: "deny"})
	if err := k8s.Create(ctx, b); err != nil {
		t.Fatalf("valid ACL refused at admission: %v", err)
	}
}
