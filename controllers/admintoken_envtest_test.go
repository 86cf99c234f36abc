//go:build envtest

package controllers_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/controllers"
	"github.com/bollard-io/bollard/controllers/resources"
)

// adminToken waits for the broker's admin token Secret and returns it.
func adminToken(t *testing.T, b *v1alpha1.MQTTBroker) *corev1.Secret {
	t.Helper()
	s := &corev1.Secret{}
	eventually(t, func() error { return get(t, s, b.Namespace, resources.AdminTokenSecretName(b)) })
	return s
}

// TestAdminTokenSecret: the operator creates a random admin token Secret
// owned by the MQTTBroker, renders the config to use it, presents it when
// it asks the broker for its status (and still gets the status), never
// rewrites it, never shows it in an Event, and makes a new one when the
// Secret is deleted. It does all this with the RBAC it ships (the suite's
// manager runs as the operator's ServiceAccount, see startManager).
func TestAdminTokenSecret(t *testing.T) {
	ns := namespace(t)
	b := observed(t, create(t, newBroker(ns, "token")))
	s := adminToken(t, b)
	tok := string(s.Data[resources.AdminTokenKey])
	if len(tok) != 64 || strings.Trim(tok, "0123456789abcdef") != "" {
		t.Errorf("token is not 32 random bytes in hex: %d characters", len(tok))
	}
	if ref := metav1.GetControllerOf(s); ref == nil || ref.UID != b.UID {
		t.Errorf("Secret controller = %v, want the MQTTBroker", ref)
	}
	cm := &corev1.ConfigMap{}
	if err := get(t, cm, ns, resources.ConfigMapName(b)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cm.Data[resources.ConfigFile], "tokenFile: "+resources.AdminTokenFile) {
		t.Errorf("config does not read the token file:\n%s", cm.Data[resources.ConfigFile])
	}

	pod := markRunning(t, b)
	brokers.set(ns, pod.Name, controllers.BrokerStatus{ConfigGeneration: b.Generation, SessionsOnline: 3})
	condition(t, b, v1alpha1.ConditionConfigApplied, metav1.ConditionTrue, v1alpha1.ReasonConfigCurrent)
	if got := brokers.token(ns, pod.Name); got != tok {
		t.Errorf("status query presented token %q..., want the Secret's", got[:min(len(got), 8)])
	}

	// A hot change reconciles again: the token stays.
	update(t, b, func(b *v1alpha1.MQTTBroker) { b.Spec.LogLevel = "debug" })
	condition(t, b, v1alpha1.ConditionConfigApplied, metav1.ConditionFalse, v1alpha1.ReasonConfigPending)
	if got := string(adminToken(t, b).Data[resources.AdminTokenKey]); got != tok {
		t.Error("the admin token was rotated by a reconcile")
	}
	var events eventsv1.EventList
	if err := k8s.List(ctx, &events, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, e := range events.Items {
		if strings.Contains(e.Note, tok) {
			t.Errorf("Event %s shows the admin token", e.Reason)
		}
	}
	hasEvent(t, b, controllers.EventCreated, "admin token")

	// A deleted Secret is made again, with a new token the queries use.
	if err := k8s.Delete(ctx, s); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() error {
		n := &corev1.Secret{}
		if err := get(t, n, ns, resources.AdminTokenSecretName(b)); err != nil {
			return err
		}
		if string(n.Data[resources.AdminTokenKey]) == tok {
			return errors.New("same token after the Secret was deleted")
		}
		if got := brokers.token(ns, pod.Name); got != string(n.Data[resources.AdminTokenKey]) {
			return errors.New("status queries do not use the new token yet")
		}
		return nil
	})
}

// TestAdminTokenSecretUnusable: a Secret of that name with no usable
// token is reported (Degraded, AdminTokenInvalid), not rewritten.
func TestAdminTokenSecretUnusable(t *testing.T) {
	ns := namespace(t)
	bad := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "handmade-admin-token"},
		Data:       map[string][]byte{resources.AdminTokenKey: []byte("short")},
	}
	if err := k8s.Create(ctx, bad); err != nil {
		t.Fatal(err)
	}
	b := observed(t, create(t, newBroker(ns, "handmade")))
	condition(t, b, v1alpha1.ConditionDegraded, metav1.ConditionTrue, v1alpha1.ReasonAdminTokenInvalid)
	hasEvent(t, b, controllers.EventAdminTokenInvalid, "handmade-admin-token")
	if got := string(adminToken(t, b).Data[resources.AdminTokenKey]); got != "short" {
		t.Errorf("the operator rewrote a Secret it does not control: %q", got)
	}
	// Fixing it by hand clears the problem (re-checked: Secrets are not watched).
	update(t, bad, func(s *corev1.Secret) { s.Data[resources.AdminTokenKey] = []byte("a-handmade-token-of-enough-length") })
	condition(t, b, v1alpha1.ConditionDegraded, metav1.ConditionFalse, v1alpha1.ReasonAsExpected)
}

// TestNetworkPolicy: on by default, admitting the admin port only from the
// operator's namespace and Prometheus; spec.networkPolicy.enabled=false
// deletes it.
func TestNetworkPolicy(t *testing.T) {
	ns := namespace(t)
	b := observed(t, create(t, newBroker(ns, "netpol")))
	np := &networkingv1.NetworkPolicy{}
	eventually(t, func() error { return get(t, np, ns, resources.NetworkPolicyName(b)) })
	if len(np.Spec.Ingress) != 2 {
		t.Fatalf("ingress rules = %+v", np.Spec.Ingress)
	}
	admin := np.Spec.Ingress[1]
	if len(admin.Ports) != 1 || admin.Ports[0].Port.IntValue() != v1alpha1.AdminPort || len(admin.From) != 2 {
		t.Errorf("admin rule = %+v", admin)
	}
	if ns := admin.From[0].NamespaceSelector; ns == nil || ns.MatchLabels[resources.LabelNamespaceName] != operatorNamespace {
		t.Errorf("first admin peer = %+v, want the operator's namespace %s", admin.From[0], operatorNamespace)
	}
	if mqtt := np.Spec.Ingress[0]; len(mqtt.From) != 0 {
		t.Errorf("MQTT rule restricts sources: %+v", mqtt)
	}
	update(t, b, func(b *v1alpha1.MQTTBroker) { b.Spec.NetworkPolicy.Enabled = ptr.To(false) })
	eventually(t, func() error {
		err := get(t, np, ns, resources.NetworkPolicyName(b))
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("NetworkPolicy still there: %w", err)
	})
	hasEvent(t, b, controllers.EventDeleted, "NetworkPolicy")
}
