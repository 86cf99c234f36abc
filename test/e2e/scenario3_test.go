//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Scenario 3: kill -9 of the broker process under load, with the same
// assertion as scenario 2.
func TestKill9UnderLoadLosesNothing(t *testing.T) {
	ns := namespace(t, "s3")
	createBroker(t, newBroker(ns, "crash"), 60*time.Second)
	pod := brokerPod(t, ns, "crash")
	tr := startTraffic(t, mqttAddr(t, pod), "crash")
	tr.waitProgress(t, 300, 30*time.Second)

	if err := testCluster.Agent.KillPod(ns, "crash-0"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "the broker restarted and Ready", func(ctx context.Context) (bool, error) {
		p, err := testCluster.Kube.CoreV1().Pods(ns).Get(ctx, "crash-0", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if p.UID != pod.UID || restartCount(p) != restartCount(pod)+1 || !podReady(p) {
			return false, fmt.Errorf("pod %s restarts %d ready %v", p.UID, restartCount(p), podReady(p))
		}
		return true, nil
	})
	tr.waitProgress(t, 300, 60*time.Second)
	tr.verify(t, "scenario 3 (kill -9)")
}
