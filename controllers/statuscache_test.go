package controllers

import (
	"context"
	"errors"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func TestStatusCache(t *testing.T) {
	var c statusCache
	broker := types.NamespacedName{Namespace: "ns", Name: "b"}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "b-0", UID: "u0"}}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	const minInterval = 10 * time.Second
	asked := 0
	answer := BrokerStatus{ConfigGeneration: 3, SessionsOnline: 1}
	var fail error
	ask := func(context.Context) (BrokerStatus, error) {
		asked++
		return answer, fail
	}
	read := func(at time.Time, gen int64) statusRead {
		return c.read(context.Background(), broker, pod, gen, at, minInterval, ask)
	}

	if r := read(t0, 3); asked != 1 || r.st.SessionsOnline != 1 || !r.at.Equal(t0) {
		t.Fatalf("first read: asked %d, %+v", asked, r)
	}
	answer.SessionsOnline = 2
	if r := read(t0.Add(9*time.Second), 3); asked != 1 || r.st.SessionsOnline != 1 || !r.at.Equal(t0) {
		t.Errorf("within the interval: asked %d times, %+v (want the cached answer with its time)", asked, r)
	}
	if r := read(t0.Add(9*time.Second), 4); asked != 2 || r.st.SessionsOnline != 2 {
		t.Errorf("a newer generation awaited: asked %d times, %+v", asked, r)
	}
	answer.ConfigGeneration = 4
	read(t0.Add(10*time.Second), 4)
	if r := read(t0.Add(21*time.Second), 4); asked != 4 || !r.at.Equal(t0.Add(21*time.Second)) {
		t.Errorf("after the interval: asked %d times, %+v", asked, r)
	}
	// A refusal is not settled: ask again until it clears.
	answer.RefusedConfigError = "config: refused"
	read(t0.Add(40*time.Second), 4)
	read(t0.Add(41*time.Second), 4)
	if asked != 6 {
		t.Errorf("refused: asked %d times, want 6", asked)
	}
	answer.RefusedConfigError = ""
	// A failure is not cached.
	fail = errors.New("connection refused")
	read(t0.Add(60*time.Second), 4)
	if r := read(t0.Add(61*time.Second), 4); asked != 8 || r.err == nil {
		t.Errorf("failures: asked %d times, %+v", asked, r)
	}
	fail = nil
	read(t0.Add(62*time.Second), 4)
	if c.size() != 1 {
		t.Fatalf("%d pods cached", c.size())
	}
	// A clock that went back does not serve an answer from the future.
	if read(t0, 4); asked != 10 {
		t.Errorf("clock went back: asked %d times", asked)
	}
	c.keep(broker, []corev1.Pod{{ObjectMeta: metav1.ObjectMeta{Name: "b-0", UID: "u1"}}})
	if c.size() != 0 {
		t.Errorf("a replaced pod is still cached (%d)", c.size())
	}
	read(t0, 4)
	c.forget(broker)
	if c.size() != 0 {
		t.Errorf("a deleted broker is still cached (%d)", c.size())
	}
}
