package controllers

import (
	"context"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// DefaultStatusMinInterval is the default of
// MQTTBrokerReconciler.StatusMinInterval.
const DefaultStatusMinInterval = 10 * time.Second

// statusCache keeps the last status each broker pod reported, so that the
// reconciles that pod, claim and child events bring (several a second
// during a rollout) do not each ask every broker: a pod is asked at most
// once per StatusMinInterval unless the operator is waiting for it to
// apply a configuration generation (then the back-off of ConfigBackoff
// paces the questions, so ConfigApplied is not delayed). It holds one
// entry per broker pod, and forgets a broker's pods once they are gone.
type statusCache struct {
	mu       sync.Mutex
	byBroker map[types.NamespacedName]map[types.UID]cachedStatus
}

// cachedStatus is a pod's last answer and when it was read.
type cachedStatus struct {
	st BrokerStatus
	at time.Time
}

// settled reports whether a cached answer may stand in for a new one: it
// shows generation gen (or later) applied, with nothing refused.
func (c cachedStatus) settled(gen int64) bool {
	return c.st.ConfigGeneration >= gen && c.st.RefusedConfigError == "" && c.st.LastReloadError == ""
}

// statusRead is one pod's answer, fresh or cached.
type statusRead struct {
	st  BrokerStatus
	at  time.Time
	err error
}

// read returns pod's status: the cached answer when it is younger than
// minInterval and settled for generation gen, else a new one from ask
// (which is cached when it succeeds; a failure is not, so the next
// reconcile asks again).
func (c *statusCache) read(ctx context.Context, broker types.NamespacedName, pod *corev1.Pod, gen int64,
	now time.Time, minInterval time.Duration, ask func(context.Context) (BrokerStatus, error)) statusRead {
	c.mu.Lock()
	prev, ok := c.byBroker[broker][pod.UID]
	c.mu.Unlock()
	if ok && now.Sub(prev.at) < minInterval && now.Sub(prev.at) >= 0 && prev.settled(gen) {
		return statusRead{st: prev.st, at: prev.at}
	}
	st, err := ask(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byBroker == nil {
		c.byBroker = map[types.NamespacedName]map[types.UID]cachedStatus{}
	}
	pods := c.byBroker[broker]
	if pods == nil {
		pods = map[types.UID]cachedStatus{}
		c.byBroker[broker] = pods
	}
	if err != nil {
		delete(pods, pod.UID)
	} else {
		pods[pod.UID] = cachedStatus{st: st, at: now}
	}
	return statusRead{st: st, at: now, err: err}
}

// keep forgets the broker's pods that are not in live (deleted, replaced).
func (c *statusCache) keep(broker types.NamespacedName, live []corev1.Pod) {
	c.mu.Lock()
	defer c.mu.Unlock()
	pods := c.byBroker[broker]
	if len(pods) == 0 {
		return
	}
	uids := make(map[types.UID]bool, len(live))
	for i := range live {
		uids[live[i].UID] = true
	}
	for uid := range pods {
		if !uids[uid] {
			delete(pods, uid)
		}
	}
	if len(pods) == 0 {
		delete(c.byBroker, broker)
	}
}

// forget drops everything cached for a broker (it was deleted).
func (c *statusCache) forget(broker types.NamespacedName) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.byBroker, broker)
}

// size is the number of pods cached (tests).
func (c *statusCache) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, pods := range c.byBroker {
		n += len(pods)
	}
	return n
}
