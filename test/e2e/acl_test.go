//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bollard-io/bollard/api/v1alpha1"
)

// TestBadACLIsNeverReportedApplied: a bad ACL is refused at admission with
// a message naming the field; a configuration the running broker refuses
// (here: its users Secret gains a line the broker cannot load) turns
// ConfigApplied False with the broker's own error while the broker keeps
// serving with its previous users and ACL; fixing it makes it True again.
func TestBadACLIsNeverReportedApplied(t *testing.T) {
	ns := namespace(t, "acl")
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	users := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "users"},
		Data:       map[string][]byte{"users": []byte("alice:" + string(hash) + "\n")},
	}
	if err := testCluster.Client.Create(t.Context(), users); err != nil {
		t.Fatal(err)
	}
	b := newBroker(ns, "acl")
	b.Spec.Auth = v1alpha1.Auth{UsersSecretRef: &v1alpha1.SecretKeyRef{Name: "users"},
		ACL: []v1alpha1.ACLRule{{User: "alice", Topic: "a/#", Access: "readwrite"}}}
	createBroker(t, b, 90*time.Second)
	waitBrokerCondition(t, ns, "acl", v1alpha1.ConditionConfigApplied, 60*time.Second)
	addr := mqttAddr(t, brokerPod(t, ns, "acl"))

	// What the broker would refuse is refused at admission, naming the field.
	bad := &v1alpha1.MQTTBroker{}
	if err := testCluster.Client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "acl"}, bad); err != nil {
		t.Fatal(err)
	}
	bad.Spec.Auth.ACL = append(bad.Spec.Auth.ACL, v1alpha1.ACLRule{User: "$anonymous", Topic: "#", Access: "readwrite"})
	err = testCluster.Client.Update(t.Context(), bad)
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.auth.acl[1].user") {
		t.Fatalf("bad ACL: err = %v, want Invalid naming spec.auth.acl[1].user", err)
	}

	// A configuration the broker refuses: a users line it cannot load.
	users.Data["users"] = []byte("alice:" + string(hash) + "\nbob:not-a-bcrypt-hash\n")
	if err := testCluster.Client.Update(t.Context(), users); err != nil {
		t.Fatal(err)
	}
	refused := waitConfigRefused(t, ns, "acl", 90*time.Second)
	if !strings.Contains(refused.Message, "line 2") || strings.Contains(refused.Message, "not-a-bcrypt-hash") {
		t.Errorf("ConfigApplied message %q: want the broker's error naming line 2, without its content", refused.Message)
	}
	waitEvent(t, ns, "acl", "ConfigRefused", 30*time.Second)
	// The broker keeps serving with its previous users.
	if ack, err := connectAs(t.Context(), addr, "alice", "s3cret"); err != nil || ack.ReasonCode != 0 {
		t.Errorf("alice after the refusal: %+v %v", ack, err)
	}

	users.Data["users"] = []byte("alice:" + string(hash) + "\n")
	if err := testCluster.Client.Update(t.Context(), users); err != nil {
		t.Fatal(err)
	}
	waitBrokerCondition(t, ns, "acl", v1alpha1.ConditionConfigApplied, 90*time.Second)
}

// waitConfigRefused waits until ConfigApplied is False with reason
// ConfigRefused and returns the condition.
func waitConfigRefused(t *testing.T, ns, name string, timeout time.Duration) metav1.Condition {
	t.Helper()
	var out metav1.Condition
	eventually(t, timeout, "ConfigApplied=False ConfigRefused", func(ctx context.Context) (bool, error) {
		var b v1alpha1.MQTTBroker
		if err := testCluster.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &b); err != nil {
			return false, err
		}
		c := meta.FindStatusCondition(b.Status.Conditions, v1alpha1.ConditionConfigApplied)
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != v1alpha1.ReasonConfigRefused {
			return false, fmt.Errorf("ConfigApplied = %+v", c)
		}
		out = *c
		return true, nil
	})
	return out
}

// waitEvent waits for an Event with reason on the MQTTBroker.
func waitEvent(t *testing.T, ns, name, reason string, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, "Event "+reason, func(ctx context.Context) (bool, error) {
		list, err := testCluster.Kube.EventsV1().Events(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, e := range list.Items {
			if e.Regarding.Name == name && e.Reason == reason {
				return true, nil
			}
		}
		return false, fmt.Errorf("no %s event among %d", reason, len(list.Items))
	})
}
