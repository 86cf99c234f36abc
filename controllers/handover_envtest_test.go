//go:build envtest

package controllers_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/controllers"
	"github.com/bollard-io/bollard/controllers/resources"
)

// PrepareHandover records the role, as a member takes it: a successor
// must not lead, a predecessor must.
func (f *fakeBrokers) PrepareHandover(_ context.Context, pod *corev1.Pod, _ string, role string, ttl time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	fc := f.clusters[pod.Namespace]
	if fc == nil {
		return errors.New("connection refused")
	}
	switch {
	case ttl < 0 || ttl > 2*time.Minute:
		return fmt.Errorf("400 Bad Request: ttl %s", ttl)
	case role == "successor" && pod.Name == fc.leader:
		return errors.New("409 Conflict: already leads")
	case role == "predecessor" && pod.Name != fc.leader:
		return errors.New("409 Conflict: not the leader")
	}
	fc.calls = append(fc.calls, "handover "+pod.Name+" "+role)
	if role == "none" {
		delete(fc.roles, pod.Name)
	} else {
		fc.roles[pod.Name] = role
	}
	return nil
}

// TransferLeadershipTo hands leadership to id; both members' handover
// roles end, as they do on the brokers (the successor's when it serves,
// the predecessor's when it stops leading).
func (f *fakeBrokers) TransferLeadershipTo(_ context.Context, leader *corev1.Pod, _, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	fc := f.clusters[leader.Namespace]
	if err := f.notLeader(fc, leader); err != nil {
		return err
	}
	if !fc.config[id] || fc.behind[id] || id == leader.Name {
		return fmt.Errorf("400 Bad Request: cannot transfer to %q", id)
	}
	fc.calls = append(fc.calls, "transfer "+leader.Name+" to "+id)
	fc.leader, fc.term = id, fc.term+1
	delete(fc.roles, id)
	delete(fc.roles, leader.Name)
	return nil
}

// readyMembers is what the members' /readyz answer: the leader unless it
// steps back, and a prepared successor.
func (f *fakeBrokers) readyMembers(ns string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	fc := f.clusters[ns]
	var out []string
	for id := range fc.config {
		if (id == fc.leader && fc.roles[id] != "predecessor") || fc.roles[id] == "successor" {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// compact drops repetitions of the last two calls (a handover is asked
// again on every reconcile until the endpoints follow).
func compact(calls []string) []string {
	var out []string
	for _, c := range calls {
		if slices.Contains(out, c) && strings.HasPrefix(c, "handover ") {
			continue
		}
		out = append(out, c)
	}
	return out
}

// endpointsPlayer plays the EndpointSlice controller with a kubelet's
// readiness probe: every period it lists, in the client Service's
// EndpointSlice, the members whose /readyz would answer ready. frozen
// stops it (the Service never follows).
type endpointsPlayer struct {
	mu     sync.Mutex
	frozen bool
}

func (p *endpointsPlayer) freeze(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.frozen = on
}

func playEndpoints(t *testing.T, b *v1alpha1.MQTTBroker, period time.Duration) *endpointsPlayer {
	t.Helper()
	if period == 0 {
		period = 100 * time.Millisecond
	}
	p := &endpointsPlayer{}
	b = b.DeepCopy() // the test goes on updating its own
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			p.mu.Lock()
			frozen := p.frozen
			p.mu.Unlock()
			if !frozen {
				if err := writeEndpoints(b, brokers.readyMembers(b.Namespace)); err != nil {
					t.Logf("endpoints player: %v", err)
				}
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	return p
}

func writeEndpoints(b *v1alpha1.MQTTBroker, ready []string) error {
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: b.Namespace, Name: resources.ServiceName(b) + "-abcde",
			Labels: map[string]string{discoveryv1.LabelServiceName: resources.ServiceName(b)}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	for i := range 3 {
		name := resources.MemberName(b, i)
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{fmt.Sprintf("10.0.0.%d", 10+i)},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(slices.Contains(ready, name))},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: b.Namespace, Name: name},
		})
	}
	cur := &discoveryv1.EndpointSlice{}
	err := k8s.Get(ctx, client.ObjectKeyFromObject(es), cur)
	if apierrors.IsNotFound(err) {
		return k8s.Create(ctx, es)
	}
	if err != nil {
		return err
	}
	cur.Endpoints = es.Endpoints
	return k8s.Update(ctx, cur)
}

// TestClusterHandoverStalls: when the client Service does not follow the
// handover, the leader keeps leading, the roll stops (Degraded, one
// Event), both members get their readiness back, and the roll tries again
// later and completes once the Service follows.
func TestClusterHandoverStalls(t *testing.T) {
	b, player := formed(t, "stall", 3)
	ns := b.Namespace
	eps := playEndpoints(t, b, 0)
	eps.freeze(true)
	update(t, b, func(b *v1alpha1.MQTTBroker) { b.Spec.Image = "example.com/bollard:v2" })
	eventually(t, func() error {
		if got := player.recreated(); len(got) != 2 {
			return fmt.Errorf("recreated %q, want both followers", got)
		}
		return nil
	})
	condition(t, b, v1alpha1.ConditionDegraded, metav1.ConditionTrue, v1alpha1.ReasonRollStalled)
	hasEvent(t, b, controllers.EventRollStalled, "did not move")
	hasEvent(t, b, controllers.EventHandoverStarted, "stall-1")
	// Stalled: the roles end at once; nobody transferred.
	eventually(t, func() error {
		if got := brokers.readyMembers(ns); !slices.Equal(got, []string{"stall-0"}) {
			return fmt.Errorf("ready members %q, want the leader only", got)
		}
		return nil
	})
	for _, c := range brokers.clusterCalls(ns) {
		if strings.HasPrefix(c, "transfer") {
			t.Fatalf("transferred while the Service did not follow: %q", brokers.clusterCalls(ns))
		}
	}
	if n := eventCount(t, b, controllers.EventRollStalled); n != 1 {
		t.Errorf("%d RollStalled Events for one stall, want 1", n)
	}
	cur := &v1alpha1.MQTTBroker{}
	if err := get(t, cur, ns, b.Name); err != nil {
		t.Fatal(err)
	}
	if hv := cur.Status.Cluster.Handover; hv == nil || hv.Successor != "stall-1" {
		t.Fatalf("status.cluster.handover %+v, want stall-1", hv)
	}
	// The Service follows again: the next attempt completes the roll.
	eps.freeze(false)
	eventually(t, func() error {
		if got := player.recreated(); len(got) != 3 {
			return fmt.Errorf("recreated %q", got)
		}
		return nil
	})
	condition(t, b, v1alpha1.ConditionDegraded, metav1.ConditionFalse, v1alpha1.ReasonAsExpected)
	eventually(t, func() error {
		if err := get(t, cur, ns, b.Name); err != nil {
			return err
		}
		if cur.Status.Leader != "stall-1" || cur.Status.Cluster.Handover != nil {
			return fmt.Errorf("leader %q, handover %+v", cur.Status.Leader, cur.Status.Cluster.Handover)
		}
		return nil
	})
}
