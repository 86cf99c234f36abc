//go:build envtest

package controllers_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/controllers"
)

// currentBroker is what a broker of this version answers.
func currentBroker(gen int64) controllers.BrokerStatus {
	return controllers.BrokerStatus{Version: "v0.0.0-test", ConfigGeneration: gen,
		SessionsOnline: 4, SessionsOffline: 6, QueuedMessages: 120,
		QueuedBytes: ptr.To[int64](12000), FullestQueueRatio: ptr.To(0.9),
		Storage: &controllers.BrokerStorage{Used: 600 << 20, Budget: 1000 << 20, VolumeFree: 300 << 20},
		TopQueues: []controllers.BrokerQueue{{ClientID: "sensor-1", Messages: 90, Bytes: 9000},
			{ClientID: "sensor-2", Messages: 30, Bytes: 3000, Policy: "telemetry"}},
		RecentDrops: &controllers.BrokerDrops{WindowSeconds: 300, ByReason: map[string]uint64{"queue_full": 7, "expired": 0}},
	}
}

func stats(t *testing.T, b *v1alpha1.MQTTBroker) *v1alpha1.BrokerStats {
	t.Helper()
	cur := &v1alpha1.MQTTBroker{}
	if err := get(t, cur, b.Namespace, b.Name); err != nil {
		t.Fatal(err)
	}
	return cur.Status.Stats
}

func statsJSON(s *v1alpha1.BrokerStats) string {
	out, _ := json.Marshal(s)
	return string(out)
}

// TestStatsKeptWhileUnreadable: status.stats holds what the broker
// reported; when the broker cannot be read, and when no pod is Ready, the
// last figures stay as they were, observedAt included (its age shows).
func TestStatsKeptWhileUnreadable(t *testing.T) {
	ns := namespace(t)
	b := observed(t, create(t, newBroker(ns, "stats")))
	if s := stats(t, b); s != nil {
		t.Fatalf("stats before any broker answered: %s", statsJSON(s))
	}
	pod := markRunning(t, b)
	before := time.Now().Add(-time.Second)
	brokers.set(ns, pod.Name, currentBroker(b.Generation))
	var first *v1alpha1.BrokerStats
	eventually(t, func() error {
		first = stats(t, b)
		if first == nil || first.TopQueues == nil {
			return fmt.Errorf("stats %s", statsJSON(first))
		}
		return nil
	})
	want := &v1alpha1.BrokerStats{ObservedAt: first.ObservedAt, Pods: 1,
		SessionsOnline: ptr.To[int64](4), SessionsOffline: ptr.To[int64](6),
		QueuedMessages: ptr.To[int64](120), QueuedBytes: ptr.To[int64](12000), FullestQueuePercent: ptr.To[int32](90),
		Storage: &v1alpha1.StorageStats{Usage: "60% of 1000Mi", UsedBytes: 600 << 20, BudgetBytes: 1000 << 20, VolumeFreeBytes: ptr.To[int64](300 << 20)},
		Drops:   &v1alpha1.DropStats{WindowSeconds: 300, Total: 7, ByReason: map[string]int64{"queue_full": 7}},
		TopQueues: []v1alpha1.QueueStats{{ClientID: "sensor-1", Messages: 90, Bytes: 9000},
			{ClientID: "sensor-2", Messages: 30, Bytes: 3000, Policy: "telemetry"}},
	}
	if !equality.Semantic.DeepEqual(first, want) {
		t.Fatalf("stats\n got %s\nwant %s", statsJSON(first), statsJSON(want))
	}
	if first.ObservedAt.Time.Before(before.Truncate(time.Second)) {
		t.Errorf("observedAt %v is older than the test", first.ObservedAt)
	}

	// The broker stops answering: ConfigApplied says so, the figures stay.
	brokers.unset(ns, pod.Name)
	condition(t, b, v1alpha1.ConditionConfigApplied, metav1.ConditionUnknown, v1alpha1.ReasonBrokerUnreachable)
	waitReconciles(t, b, 3)
	if s := stats(t, b); !equality.Semantic.DeepEqual(s, first) {
		t.Errorf("while the broker cannot be read:\n got %s\nwant %s", statsJSON(s), statsJSON(first))
	}

	// No pod is Ready: still the last figures.
	eventually(t, func() error {
		p := &corev1.Pod{}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(pod), p); err != nil {
			return err
		}
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse, LastTransitionTime: metav1.Now()}}
		return k8s.Status().Update(ctx, p)
	})
	condition(t, b, v1alpha1.ConditionConfigApplied, metav1.ConditionFalse, v1alpha1.ReasonNoRunningBrokers)
	cur := &v1alpha1.MQTTBroker{}
	if err := get(t, cur, ns, b.Name); err != nil {
		t.Fatal(err)
	}
	if !equality.Semantic.DeepEqual(cur.Status.Stats, first) || ptr.Deref(cur.Status.Sessions, -1) != 10 {
		t.Errorf("with no pod Ready: sessions %v, stats %s", cur.Status.Sessions, statsJSON(cur.Status.Stats))
	}
}

// waitReconciles waits until the operator asked the broker's pods n more
// times (each question is a reconcile that could have changed the status).
func waitReconciles(t *testing.T, b *v1alpha1.MQTTBroker, n int) {
	t.Helper()
	pod := b.Name + "-0"
	start := brokers.podCalls(b.Namespace, pod)
	eventually(t, func() error {
		if got := brokers.podCalls(b.Namespace, pod) - start; got < n {
			return fmt.Errorf("%d of %d questions", got, n)
		}
		return nil
	})
}

// TestStatsUnknownStaysAbsent: a broker that does not report a figure (an
// older version) leaves it out of status.stats; it never reads 0.
func TestStatsUnknownStaysAbsent(t *testing.T) {
	ns := namespace(t)
	b := observed(t, create(t, newBroker(ns, "older")))
	pod := markRunning(t, b)
	brokers.set(ns, pod.Name, controllers.BrokerStatus{Version: "v0.0.9", ConfigGeneration: b.Generation,
		SessionsOnline: 1, SessionsOffline: 0, QueuedMessages: 0})
	var s *v1alpha1.BrokerStats
	eventually(t, func() error {
		if s = stats(t, b); s == nil {
			return fmt.Errorf("no stats yet")
		}
		return nil
	})
	if s.QueuedBytes != nil || s.FullestQueuePercent != nil || s.Storage != nil || s.Drops != nil || s.TopQueues != nil {
		t.Errorf("figures the broker did not report: %s", statsJSON(s))
	}
	if ptr.Deref(s.SessionsOnline, -1) != 1 || ptr.Deref(s.SessionsOffline, -1) != 0 || ptr.Deref(s.QueuedMessages, -1) != 0 {
		t.Errorf("reported zeros must read 0: %s", statsJSON(s))
	}
}

// TestStatusQueriesAreBounded: events (here, pod annotations, each of
// which brings a reconcile) do not make the operator ask a Ready broker
// more than once per --broker-status-min-interval; a configuration change
// is still seen at once.
func TestStatusQueriesAreBounded(t *testing.T) {
	ns := namespace(t)
	b := observed(t, create(t, newBroker(ns, "bounded")))
	pod := markRunning(t, b)
	brokers.set(ns, pod.Name, currentBroker(b.Generation))
	condition(t, b, v1alpha1.ConditionConfigApplied, metav1.ConditionTrue, v1alpha1.ReasonConfigCurrent)

	start, began := brokers.podCalls(ns, pod.Name), time.Now()
	for i := range 40 {
		update(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: pod.Name}}, func(p *corev1.Pod) {
			if p.Annotations == nil {
				p.Annotations = map[string]string{}
			}
			p.Annotations["test/poke"] = fmt.Sprint(i)
		})
		time.Sleep(50 * time.Millisecond)
	}
	elapsed := time.Since(began)
	asked := brokers.podCalls(ns, pod.Name) - start
	most := int(elapsed/statusMinInterval) + 2
	if asked > most {
		t.Errorf("40 pod events in %s: the broker was asked %d times, at most %d expected", elapsed, asked, most)
	}
	t.Logf("40 pod events in %s: %d questions", elapsed, asked)

	// A hot change is awaited: asked again without waiting out the interval.
	update(t, b, func(b *v1alpha1.MQTTBroker) { b.Spec.Limits.MaxInflight = 64 })
	b = observed(t, b)
	brokers.set(ns, pod.Name, currentBroker(b.Generation))
	condition(t, b, v1alpha1.ConditionConfigApplied, metav1.ConditionTrue, v1alpha1.ReasonConfigCurrent)
}
