//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/test/e2e/cluster"
)

// Scenario 2: zero loss across a rolling upgrade. Offline persistent QoS 1
// and QoS 2 subscribers; publishers send numbered messages continuously
// and reconnect on failure while an image change rolls the broker pod.
// Every acknowledged message is delivered, QoS 2 exactly once.
func TestRollingUpgradeLosesNothing(t *testing.T) {
	ns := namespace(t, "s2")
	createBroker(t, newBroker(ns, "roll"), 60*time.Second)
	before := brokerPod(t, ns, "roll")
	tr := startTraffic(t, mqttAddr(t, before), "roll")
	tr.waitProgress(t, 200, 30*time.Second)

	const upgraded = cluster.DefaultBrokerImage + "-upgraded"
	updateBroker(t, ns, "roll", func(b *v1alpha1.MQTTBroker) { b.Spec.Image = upgraded })
	eventually(t, 90*time.Second, "a new broker pod running the new image", func(ctx context.Context) (bool, error) {
		p, err := testCluster.Kube.CoreV1().Pods(ns).Get(ctx, "roll-0", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if p.UID == before.UID || p.Spec.Containers[0].Image != upgraded || !podReady(p) {
			return false, fmt.Errorf("pod %s image %s ready %v", p.UID, p.Spec.Containers[0].Image, podReady(p))
		}
		return true, nil
	})
	waitBrokerCondition(t, ns, "roll", v1alpha1.ConditionReady, 60*time.Second)
	tr.waitProgress(t, 200, 60*time.Second)
	tr.verify(t, "scenario 2 (rolling upgrade)")
}
