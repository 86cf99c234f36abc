//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/test/mqtttest"
)

// Scenario 4: a hot change of queues.maxQueuedMessages applies without a
// pod restart (same pod UID and process), ConfigApplied becomes True, and
// the new limit is enforced.
func TestHotQueueLimitChange(t *testing.T) {
	ns := namespace(t, "s4")
	createBroker(t, newBroker(ns, "hot"), 60*time.Second)
	before := brokerPod(t, ns, "hot")
	pid := testCluster.Agent.PID(ns, "hot-0", "broker")
	if pid == 0 {
		t.Fatal("no broker process")
	}

	const limit = 5
	updateBroker(t, ns, "hot", func(b *v1alpha1.MQTTBroker) { b.Spec.Queues.MaxQueuedMessages = limit })
	b := waitBrokerCondition(t, ns, "hot", v1alpha1.ConditionConfigApplied, 60*time.Second)
	admin := adminAddr(t, before)
	eventually(t, 30*time.Second, "the broker reports the new generation", func(ctx context.Context) (bool, error) {
		st, err := brokerStatus(ctx, admin)
		if err != nil {
			return false, err
		}
		if st["configGeneration"] != float64(b.Generation) || st["pendingRestart"] != false {
			return false, fmt.Errorf("status %v, want generation %d and nothing pending", st, b.Generation)
		}
		return true, nil
	})
	after, err := testCluster.Kube.CoreV1().Pods(ns).Get(t.Context(), "hot-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if after.UID != before.UID || containerID(after) != containerID(before) ||
		testCluster.Agent.PID(ns, "hot-0", "broker") != pid || restartCount(after) != restartCount(before) {
		t.Fatalf("the broker restarted: pod %s -> %s, container %s -> %s", before.UID, after.UID,
			containerID(before), containerID(after))
	}
	checkQueueLimit(t, mqttAddr(t, after), admin, limit)
}

// checkQueueLimit queues 4*limit messages for an offline session and
// expects the newest limit of them (overflow policy DropOldest).
func checkQueueLimit(t *testing.T, addr, admin string, limit int) {
	t.Helper()
	ctx := t.Context()
	if err := mqtttest.SubscribeOffline(ctx, addr, "s4-sub", "limit/#", 1, 3600); err != nil {
		t.Fatal(err)
	}
	pub, _, err := mqtttest.Dial(ctx, addr, "s4-pub", true, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := 4 * limit
	for i := 1; i <= n; i++ {
		if _, err := pub.Publish(ctx, &paho.Publish{Topic: "limit/x", QoS: 1, Payload: []byte("seq-" + strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	_ = pub.Disconnect(&paho.Disconnect{}) // best effort
	eventually(t, 10*time.Second, "the session's queue at the limit", func(ctx context.Context) (bool, error) {
		q, err := queuedMessages(ctx, admin, "s4-sub")
		return q == limit, err
	})
	box := newInbox()
	sub, _, err := mqtttest.Dial(ctx, addr, "s4-sub", false, 3600, box.add)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Disconnect(&paho.Disconnect{}) //nolint:errcheck // best effort
	want := map[string][]int{}
	for i := n - limit + 1; i <= n; i++ {
		want["limit/x"] = append(want["limit/x"], i)
	}
	eventually(t, 10*time.Second, "the newest messages delivered", func(context.Context) (bool, error) {
		return box.check(want) == 0, nil
	})
	eventually(t, 10*time.Second, "no more deliveries", func(context.Context) (bool, error) {
		return box.quietFor(500 * time.Millisecond), nil
	})
	if got := box.count(); got != limit {
		t.Errorf("received %d queued messages, want the limit %d", got, limit)
	}
}

// queuedMessages reads a session's queue depth from the admin endpoint.
func queuedMessages(ctx context.Context, admin, clientID string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		"http://"+admin+"/v1/sessions/"+url.PathEscape(clientID), nil)
	if err != nil {
		return 0, err
	}
	var info struct {
		QueuedMessages int `json:"queuedMessages"`
	}
	if err := getJSON(req, &info); err != nil {
		return 0, err
	}
	return info.QueuedMessages, nil
}
