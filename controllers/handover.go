package controllers

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/broker/adminapi"
	"github.com/bollard-io/bollard/controllers/members"
	"github.com/bollard-io/bollard/controllers/resources"
)

// The leader's turn in a roll is a readiness handover (members/handover.go):
// the operator makes the successor ready and the leader not, waits until
// the client Service's EndpointSlices follow, then transfers leadership to
// that successor, so the clients it hands over reconnect straight to it.

// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch

// handoverTTL is how long a member keeps its handover role unless asked
// again: the operator renews it on every reconcile of the handover, and
// a handover the operator abandons (it stops, or the roll stalls) ends on
// the brokers by itself within this.
const handoverTTL = 20 * time.Second

// handoverRequeue is how soon a reconcile runs again while a handover
// waits for the client Service's endpoints (the endpoints change without
// anything the operator watches changing). It lasts at most
// members.Limits.Handover.
const handoverRequeue = 250 * time.Millisecond

// maxEndpointSlices bounds what the operator reads of the client
// Service's EndpointSlices (a Service of a few pods has one).
const maxEndpointSlices = 16

// handoverMemory keeps, per MQTTBroker, the readiness handover the last
// reconcile decided (none included), which is what the operator last asked
// of the members. A reconcile reads the MQTTBroker from the manager's
// cache, which may not hold the status the reconcile before it wrote yet:
// during a handover, the EndpointSlice events and handoverRequeue bring
// reconciles milliseconds apart. Reading the handover under way from a
// stale status, a reconcile would choose the successor anew (by lag, which
// moves under load) and prepare a second one while the first still held
// CONNECTs and answered ready (the likely cause of ha-2, then ha-0, in an
// e2e rolling upgrade). The memory is this process's alone; a new operator process (a
// restart, or another replica taking the lease: a manager that loses its
// lease exits) starts from the status, which the reconciles wrote.
type handoverMemory struct {
	mu sync.Mutex
	m  map[types.NamespacedName]rememberedHandover
}

type rememberedHandover struct {
	uid types.UID
	h   *members.Handover // nil: none under way
}

// get returns the handover remembered for b, and whether there is one.
func (hm *handoverMemory) get(b *v1alpha1.MQTTBroker) (*members.Handover, bool) {
	hm.mu.Lock()
	defer hm.mu.Unlock()
	r, ok := hm.m[client.ObjectKeyFromObject(b)]
	if !ok || r.uid != b.UID {
		return nil, false
	}
	return r.h, true
}

// set remembers h (nil: none) for b.
func (hm *handoverMemory) set(b *v1alpha1.MQTTBroker, h *members.Handover) {
	hm.mu.Lock()
	defer hm.mu.Unlock()
	if hm.m == nil {
		hm.m = make(map[types.NamespacedName]rememberedHandover)
	}
	hm.m[client.ObjectKeyFromObject(b)] = rememberedHandover{uid: b.UID, h: h}
}

// forget drops what is remembered of a deleted MQTTBroker.
func (hm *handoverMemory) forget(key types.NamespacedName) {
	hm.mu.Lock()
	defer hm.mu.Unlock()
	delete(hm.m, key)
}

// decide is members.Decide; when the decision depends on where the client
// Service routes (a handover), it reads the Service's EndpointSlices and
// decides again with them.
func (r *MQTTBrokerReconciler) decide(ctx context.Context, p *pass, in *members.Input) members.Action {
	act := members.Decide(*in)
	if act.To == "" || (act.Kind != members.PrepareHandover && act.Kind != members.Stalled) {
		return act
	}
	eps, err := r.clientEndpoints(ctx, p.broker)
	if err != nil {
		// Unknown endpoints never allow the transfer; the handover waits,
		// and stalls when this lasts.
		log.FromContext(ctx).Info("cannot read the client Service's endpoints", "err", err)
		return act
	}
	in.Endpoints = eps
	return members.Decide(*in)
}

// clientEndpoints says which pods the client Service's EndpointSlices
// list as ready (an endpoint without a ready condition counts as ready,
// as kube-proxy counts it). It reads from the API server, not the cache:
// the operator watches no EndpointSlices.
func (r *MQTTBrokerReconciler) clientEndpoints(ctx context.Context, b *v1alpha1.MQTTBroker) (map[string]bool, error) {
	var list discoveryv1.EndpointSliceList
	if err := r.APIReader.List(ctx, &list, client.InNamespace(b.Namespace),
		client.MatchingLabels{discoveryv1.LabelServiceName: resources.ServiceName(b)}, client.Limit(maxEndpointSlices)); err != nil {
		return nil, fmt.Errorf("listing the EndpointSlices of Service %s: %w", resources.ServiceName(b), err)
	}
	return readyPods(list.Items), nil
}

// readyPods: pod name -> ready in any of the slices.
func readyPods(slices []discoveryv1.EndpointSlice) map[string]bool {
	out := map[string]bool{}
	for _, s := range slices {
		for _, e := range s.Endpoints {
			if e.TargetRef == nil || e.TargetRef.Kind != "Pod" {
				continue
			}
			ready := e.Conditions.Ready == nil || *e.Conditions.Ready
			out[e.TargetRef.Name] = out[e.TargetRef.Name] || ready
		}
	}
	return out
}

// prepareHandover makes the successor ready (it holds the CONNECTs it
// gets until it leads) and, once the Service lists it (act.StepBack), the
// leader unready (it keeps serving its clients), renewing the roles for
// handoverTTL; without act.StepBack the leader is made ready.
func (r *MQTTBrokerReconciler) prepareHandover(ctx context.Context, p *pass, act members.Action) error {
	b := p.broker
	p.handoverRequeue = true
	cctx, cancel := context.WithTimeout(ctx, clusterCallTimeout)
	defer cancel()
	succ, leader := r.podNamed(p, act.To), r.podNamed(p, act.Leader)
	if p.handoverStarted {
		// Recorded when the handover is chosen (status.cluster.handover
		// starts with it), not when its first call succeeds: a first call
		// that fails is retried under the same record, and its Event
		// (ClusterChangeFailed) follows this one.
		r.event(b, succ, false, EventHandoverStarted, "Roll", "%s", act.Reason)
	}
	err := r.Cluster.PrepareHandover(cctx, succ, p.adminToken, adminapi.HandoverSuccessor, handoverTTL)
	if err == nil {
		// Until the Service lists the successor, the leader stays (or
		// becomes again: the successor's readiness flickered, or another
		// successor was chosen) ready, so that the Service is never empty.
		role, ttl := adminapi.HandoverNone, time.Duration(0)
		if act.StepBack {
			role, ttl = adminapi.HandoverPredecessor, handoverTTL
		}
		err = r.Cluster.PrepareHandover(cctx, leader, p.adminToken, role, ttl)
	}
	for _, name := range act.StandDown {
		// A successor chosen before this one: ready, it would take
		// clients and hold them for a leadership that goes elsewhere.
		if err == nil {
			err = r.Cluster.PrepareHandover(cctx, r.podNamed(p, name), p.adminToken, adminapi.HandoverNone, 0)
		}
	}
	if err != nil {
		r.event(b, nil, true, EventClusterChangeFailed, act.Kind.String(), "%s: %v", act.Reason, err)
		log.FromContext(ctx).Info("handover failed", "successor", act.To, "leader", act.Leader, "err", err)
		return nil
	}
	return nil
}

// endHandover gives both members of a stalled handover their readiness
// back at once (it would end by itself within handoverTTL).
func (r *MQTTBrokerReconciler) endHandover(ctx context.Context, p *pass, act members.Action) {
	cctx, cancel := context.WithTimeout(ctx, clusterCallTimeout)
	defer cancel()
	for _, pod := range []*corev1.Pod{r.podNamed(p, act.Leader), r.podNamed(p, act.To)} {
		if err := r.Cluster.PrepareHandover(cctx, pod, p.adminToken, adminapi.HandoverNone, 0); err != nil {
			log.FromContext(ctx).Info("cannot end the handover role", "pod", pod.Name, "err", err)
		}
	}
}
