//go:build envtest

package controllers_test

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/controllers"
)

// A cost-4 bcrypt hash, to keep the test fast.
const userHash = "$2a$04$LxRxN7CFtdNmwjUOAfbIBePGN91lt0LN/iQO3dsCB9U52iHywkKGO"

// TestInvalidUsersSecretDegrades: a users Secret line that is not
// "username:bcrypt-hash" makes the broker Degraded, naming the line but
// never its content; fixing the Secret clears it (the Secret watch).
func TestInvalidUsersSecretDegrades(t *testing.T) {
	ns := namespace(t)
	const leaked = "hunter2-plaintext"
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "users"},
		Data:       map[string][]byte{"users": []byte("alice:" + userHash + "\nbob:" + leaked + "\n")},
	}
	if err := k8s.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	b := newBroker(ns, "users")
	b.Spec.Auth.UsersSecretRef = &v1alpha1.SecretKeyRef{Name: "users"}
	b = observed(t, create(t, b))
	condition(t, b, v1alpha1.ConditionDegraded, metav1.ConditionTrue, v1alpha1.ReasonInvalidUsers)
	cur := &v1alpha1.MQTTBroker{}
	if err := get(t, cur, ns, b.Name); err != nil {
		t.Fatal(err)
	}
	msg := meta.FindStatusCondition(cur.Status.Conditions, v1alpha1.ConditionDegraded).Message
	if !strings.Contains(msg, "line 2 ") || strings.Contains(msg, leaked) || strings.Contains(msg, userHash) {
		t.Errorf("Degraded message %q: want line 2 named and no line content", msg)
	}
	hasEvent(t, b, controllers.EventInvalidUsers, "line 2 ")
	var events eventsv1.EventList
	if err := k8s.List(ctx, &events, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, e := range events.Items {
		if strings.Contains(e.Note, leaked) || strings.Contains(e.Note, userHash) {
			t.Errorf("event %s quotes the users file: %q", e.Reason, e.Note)
		}
	}

	update(t, secret, func(s *corev1.Secret) {
		s.Data["users"] = []byte(fmt.Sprintf("alice:%s\nbob:%s\n", userHash, userHash))
	})
	condition(t, b, v1alpha1.ConditionDegraded, metav1.ConditionFalse, v1alpha1.ReasonAsExpected)
}
