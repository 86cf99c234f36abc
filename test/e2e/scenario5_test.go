//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bollard-io/bollard/controllers/resources"
)

// Scenario 5: deleting the MQTTBroker removes its children (the garbage
// collector follows their owner references) and stops the broker process;
// the PVC, holding the sessions, is retained by default.
func TestDeleteKeepsClaim(t *testing.T) {
	ns := namespace(t, "s5")
	b := newBroker(ns, "gone")
	createBroker(t, b, 60*time.Second)
	brokerPod(t, ns, "gone")
	claim := resources.PVCName(b, 0)

	if err := testCluster.Client.Delete(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	children := map[string]client.Object{
		"StatefulSet " + resources.StatefulSetName(b):                 &appsv1.StatefulSet{},
		"Service " + resources.ServiceName(b):                         &corev1.Service{},
		"Service " + resources.HeadlessServiceName(b):                 &corev1.Service{},
		"ConfigMap " + resources.ConfigMapName(b):                     &corev1.ConfigMap{},
		"ServiceAccount " + resources.ServiceAccountName(b):           &corev1.ServiceAccount{},
		"PodDisruptionBudget " + resources.PodDisruptionBudgetName(b): &policyv1.PodDisruptionBudget{},
		"Pod gone-0": &corev1.Pod{},
	}
	eventually(t, 60*time.Second, "children deleted", func(ctx context.Context) (bool, error) {
		for what, obj := range children {
			err := testCluster.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: lastWord(what)}, obj)
			if err == nil {
				return false, fmt.Errorf("%s still exists", what)
			}
			if !apierrors.IsNotFound(err) {
				return false, err
			}
		}
		return true, nil
	})
	if pid := testCluster.Agent.PID(ns, "gone-0", "broker"); pid != 0 {
		t.Errorf("broker process %d still runs", pid)
	}
	var pvc corev1.PersistentVolumeClaim
	if err := testCluster.Client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: claim}, &pvc); err != nil {
		t.Fatalf("claim %s not retained: %v", claim, err)
	}
	if pvc.DeletionTimestamp != nil || pvc.Status.Phase != corev1.ClaimBound {
		t.Errorf("claim %s: phase %s, deleting %v", claim, pvc.Status.Phase, pvc.DeletionTimestamp != nil)
	}
}

func lastWord(s string) string {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == ' ' {
			return s[i+1:]
		}
	}
	return s
}
