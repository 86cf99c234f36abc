//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/controllers/resources"
	"github.com/bollard-io/bollard/test/e2e/nodeagent"
	"github.com/bollard-io/bollard/test/history/workload"
)

// The replication scenarios of issue 16 run a 3-member broker (the
// operator's StatefulSet, the node agent running its pods) and a workload
// of test/history/workload whose clients know one address: the client
// Service's, carried by the node agent as kube-proxy carries a cluster IP.
// A follower refuses them (its readiness fails, so the Service does not
// send them there; if it did, CONNACK 0x9C names the leader by its DNS
// name, which the test clients do not follow); after a failover they come
// back through the same address. Each scenario checks the history (no
// acknowledged message lost, per-publisher order, QoS 2 exactly once) and
// measures each client's outages: how often the broker or the network
// ended a connection, and how long until the next one.

// Goals of issue 16.
const (
	// failoverGoal: leader killed, clients back through the Service
	// within this (p99).
	failoverGoal = 5 * time.Second
	// rollGoal: a rolling upgrade disconnects each client at most once,
	// for at most this (p99).
	rollGoal = time.Second
)

// clusterWorkload is the scenarios' load: two publishers and one online
// and one offline persistent subscriber at each of QoS 1 and 2.
var clusterWorkload = workload.Config{PerQoS: 2, Online: 1, Offline: 1}

// rollWorkload is the rolling upgrade's load: more clients (16
// publishers, 8 online subscribers), so that its p99 is more than the
// worst of six, and the new leader gets a crowd reconnecting at once.
var rollWorkload = workload.Config{PerQoS: 8, Online: 4, Offline: 1}

// newClusterBroker is newBroker with n members.
func newClusterBroker(ns, name string, n int32) *v1alpha1.MQTTBroker {
	b := newBroker(ns, name)
	b.Spec.Replicas = ptr.To(n)
	return b
}

// replicated is a running cluster under test.
type replicated struct {
	t       *testing.T
	ns      string
	name    string
	members int
	// svc is the client Service's MQTT address.
	svc string
}

// startReplicated creates an n-member broker, waits until it is Ready
// and a leader serves, and returns it with its Service address.
func startReplicated(t *testing.T, prefix string, n int) *replicated {
	t.Helper()
	ns := namespace(t, prefix)
	b := newClusterBroker(ns, "ha", int32(n))
	createBroker(t, b, 3*time.Minute)
	r := &replicated{t: t, ns: ns, name: b.Name, members: n, svc: serviceAddr(t, ns, resources.ServiceName(b), resources.PortMQTT)}
	r.waitLeader(0, true, time.Minute)
	return r
}

func (r *replicated) pod(i int) string { return fmt.Sprintf("%s-%d", r.name, i) }

// memberView is the part of GET /v1/cluster the scenarios read.
type memberView struct {
	ID      string `json:"id"`
	Role    string `json:"role"`
	Serving bool   `json:"serving"`
	Leader  string `json:"leader"`
	Term    uint64 `json:"term"`
}

// view reads GET /v1/cluster of the named member's pod.
func (r *replicated) view(ctx context.Context, pod string) (memberView, error) {
	var v memberView
	err := r.adminGet(ctx, pod, "/v1/cluster", &v)
	return v, err
}

// adminGet reads a GET of the named member's admin API (with the token)
// into v.
func (r *replicated) adminGet(ctx context.Context, pod, path string, v any) error {
	p, err := testCluster.Kube.CoreV1().Pods(r.ns).Get(ctx, pod, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if p.DeletionTimestamp != nil {
		return fmt.Errorf("pod %s is terminating", pod)
	}
	ports, err := nodeagent.PortMap(p)
	if err != nil {
		return err
	}
	admin, ok := ports[resources.PortAdmin]
	if !ok {
		return fmt.Errorf("pod %s has no admin port in %v", pod, ports)
	}
	if _, ok := adminTokens.Load(admin); !ok {
		s, err := testCluster.Kube.CoreV1().Secrets(r.ns).Get(ctx, r.name+"-admin-token", metav1.GetOptions{}) // resources.AdminTokenSecretName
		if err != nil {
			return err
		}
		adminTokens.Store(admin, string(s.Data[resources.AdminTokenKey]))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+path, nil)
	if err != nil {
		return err
	}
	return getJSON(req, v)
}

// waitLeader waits until exactly one member serves as the leader in a
// term after the given one, the Service routes to it alone (its pod is
// Ready, and the only endpoint), and, with whole, every member follows it.
// It returns the leader's pod name and term. (A leader killed and
// restarted at once may well win the next election: what counts is that
// a new term serves.)
func (r *replicated) waitLeader(after uint64, whole bool, timeout time.Duration) (string, uint64) {
	r.t.Helper()
	var leader, last string
	var term uint64
	eventually(r.t, timeout, fmt.Sprintf("a serving leader of a term after %d (every member following: %v)", after, whole), func(ctx context.Context) (ok bool, err error) {
		defer func() {
			// The last error alone is often the deadline's: log each new
			// reason the wait goes on.
			if err != nil && err.Error() != last && ctx.Err() == nil {
				last = err.Error()
				r.t.Logf("waiting for the leader: %v", err)
			}
		}()
		leader = ""
		var leaders []string
		views := map[string]memberView{}
		for i := range r.members {
			v, err := r.view(ctx, r.pod(i))
			if err != nil {
				if whole {
					return false, fmt.Errorf("%s: %w", r.pod(i), err)
				}
				continue
			}
			views[r.pod(i)] = v
			if v.Role == "leader" && v.Serving && v.Term > after {
				leaders = append(leaders, r.pod(i))
			}
		}
		if len(leaders) != 1 {
			return false, fmt.Errorf("serving leaders of a term after %d: %v; %v", after, leaders, views)
		}
		leader, term = leaders[0], views[leaders[0]].Term
		for p, v := range views {
			if whole && v.Leader != leader {
				return false, fmt.Errorf("%s follows %q, not %s", p, v.Leader, leader)
			}
		}
		st, err := testCluster.Agent.ServiceStats(r.ns, r.name, resources.PortMQTT)
		if err != nil {
			return false, err
		}
		if st.Endpoints != 1 {
			return false, fmt.Errorf("the Service has %d endpoints, want the leader only; slices: %s", st.Endpoints, r.slices(ctx))
		}
		p, err := testCluster.Kube.CoreV1().Pods(r.ns).Get(ctx, leader, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if !podReady(p) {
			return false, fmt.Errorf("the leader %s is not Ready yet", leader)
		}
		return true, nil
	})
	return leader, term
}

// slices describes the client Service's EndpointSlices, for a failure's
// message.
func (r *replicated) slices(ctx context.Context) string {
	l, err := testCluster.Kube.DiscoveryV1().EndpointSlices(r.ns).List(ctx, metav1.ListOptions{
		LabelSelector: discoveryv1.LabelServiceName + "=" + r.name,
	})
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, s := range l.Items {
		fmt.Fprintf(&b, "[%s ports", s.Name)
		for _, p := range s.Ports {
			fmt.Fprintf(&b, " %s/%d", ptr.Deref(p.Name, ""), ptr.Deref(p.Port, 0))
		}
		for _, e := range s.Endpoints {
			c := e.Conditions
			ref := ""
			if e.TargetRef != nil {
				ref = e.TargetRef.Name
			}
			fmt.Fprintf(&b, "; %s %v ready=%v serving=%v terminating=%v", ref, e.Addresses,
				ptr.Deref(c.Ready, true), ptr.Deref(c.Serving, true), ptr.Deref(c.Terminating, false))
		}
		b.WriteString("]")
	}
	return b.String()
}

// outagesSince are the client outages that began at or after from.
func outagesSince(w *workload.Workload, from time.Time) []workload.Outage {
	var out []workload.Outage
	for _, o := range w.ClientOutages() {
		if !o.At.Before(from) {
			out = append(out, o)
		}
	}
	return out
}

// lengths are the outages' lengths.
func lengths(outs []workload.Outage) []time.Duration {
	out := make([]time.Duration, 0, len(outs))
	for _, o := range outs {
		out = append(out, o.Length)
	}
	return out
}

// checkP99 reports the p99 of the outages against goal, and fails the test
// only beyond goalSlack times the goal: a goal is a figure to measure (on
// a shared 2-core machine its probe ticks and scheduling stretch it), the
// test guards against gross regressions; the closing figures come from
// these logs.
func checkP99(t *testing.T, what string, outs []workload.Outage, goal time.Duration) {
	t.Helper()
	checkP99Within(t, what, outs, goal, goalSlack)
}

// checkP99Within is checkP99 failing beyond slack times the goal.
func checkP99Within(t *testing.T, what string, outs []workload.Outage, goal time.Duration, slack int) {
	t.Helper()
	ls := lengths(outs)
	t.Logf("%s: client outages %s", what, workload.Durations(ls))
	if len(ls) == 0 {
		return
	}
	slices.Sort(ls)
	p := workload.Pct(ls, 99)
	verdict := "met"
	if p > goal {
		verdict = "MISSED"
		for _, o := range outs {
			t.Logf("  %s: %s at %s, back after %s (to %s)", o.Client, o.Describe(), o.At.Format("15:04:05.000"),
				o.Length.Round(time.Millisecond), o.To)
		}
	}
	t.Logf("%s: p99 of the client outages %s, goal %s: %s", what, p.Round(time.Millisecond), goal, verdict)
	if p > time.Duration(slack)*goal {
		t.Errorf("%s: p99 of the client outages is %s, over %d times the goal %s", what, p.Round(time.Millisecond), slack, goal)
	}
}

// goalSlack: how far past its goal a measured p99 fails the test.
const goalSlack = 3

// rollSlack: the rolling upgrade's p99 fails the test past the goal
// itself. With the readiness handover the clients reconnect straight to
// the prepared successor (p99 tens of ms measured here, on 2 loaded
// cores); before it they waited for its readiness probe (p99 1.16 s).
const rollSlack = 1

// everyOnlineClientOut checks that each online client lost its connection
// at least once since from: the fault reached them all, so the outages
// measure it.
func everyOnlineClientOut(t *testing.T, w *workload.Workload, outs []workload.Outage) {
	t.Helper()
	out := map[string]bool{}
	for _, o := range outs {
		out[o.Client] = true
	}
	for _, p := range w.Pubs {
		if !out[p.ID()] {
			t.Errorf("publisher %s kept its connection through the fault: the scenario measured nothing for it", p.ID())
		}
	}
	for _, s := range w.Online {
		if !out[s.ClientID()] {
			t.Errorf("subscriber %s kept its connection through the fault", s.ClientID())
		}
	}
}

// TestReplicatedThroughService: a 3-member broker serves clients through
// its Service, and only its leader is behind it.
func TestReplicatedThroughService(t *testing.T) {
	r := startReplicated(t, "ha0", 3)
	w := workload.Start(t, []string{r.svc}, workload.Default)
	w.WaitAcked(20, time.Minute)
	w.Finish(2 * time.Minute)
	st, err := testCluster.Agent.ServiceStats(r.ns, r.name, resources.PortMQTT)
	if err != nil || st.Forwarded == 0 {
		t.Fatalf("the Service carried no connection: %+v, %v", st, err)
	}
}

// TestReplicatedLeaderKilled kills the leader's process with SIGKILL,
// three times under load, each time once the cluster is whole again (the
// killed member restarts in place, by the pod's restart policy): the
// clients come back through the Service to the new leader within
// failoverGoal (p99), and nothing acknowledged is lost.
func TestReplicatedLeaderKilled(t *testing.T) {
	r := startReplicated(t, "ha1", 3)
	w := workload.Start(t, []string{r.svc}, clusterWorkload)
	w.WaitAcked(20, time.Minute)
	start := time.Now()
	for range 3 {
		old, term := r.waitLeader(0, true, 2*time.Minute)
		w.WaitProgress(50, time.Minute)
		at := time.Now()
		if err := testCluster.Agent.KillPod(r.ns, old); err != nil {
			t.Fatal(err)
		}
		nl, nt := r.waitLeader(term, false, time.Minute)
		t.Logf("killed the leader %s (term %d) at %s; %s leads (term %d), alone behind the Service %s later", old, term,
			at.Format("15:04:05.000"), nl, nt, time.Since(at).Round(time.Millisecond))
		w.WaitAcked(20, time.Minute)
	}
	outs := outagesSince(w, start)
	everyOnlineClientOut(t, w, outs)
	checkP99(t, "leader killed (3 times)", outs, failoverGoal)
	w.Finish(3 * time.Minute)
}

// atMostOncePerClient counts each client's outages; it fails the test
// for a client disconnected more than once.
func atMostOncePerClient(t *testing.T, what string, outs []workload.Outage) {
	t.Helper()
	n := map[string]int{}
	for _, o := range outs {
		n[o.Client]++
	}
	for c, k := range n {
		if k > 1 {
			for _, o := range outs {
				if o.Client == c {
					t.Logf("  %s: %s from %s at %s, back after %s", c, o.Describe(), o.From, o.At.Format("15:04:05.000"), o.Length.Round(time.Millisecond))
				}
			}
			t.Errorf("%s: %s was disconnected %d times, the goal is at most once", what, c, k)
		}
	}
}

// TestReplicatedLeaderPodDeleted deletes the leader's pod (a graceful
// stop: the leader hands leadership over, then its clients, and the
// StatefulSet makes the pod again): each client is disconnected once and
// back through the Service within failoverGoal (p99); nothing
// acknowledged is lost.
func TestReplicatedLeaderPodDeleted(t *testing.T) {
	r := startReplicated(t, "ha2", 3)
	w := workload.Start(t, []string{r.svc}, clusterWorkload)
	w.WaitAcked(20, time.Minute)
	old, term := r.waitLeader(0, true, time.Minute)
	before, err := testCluster.Kube.CoreV1().Pods(r.ns).Get(t.Context(), old, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := testCluster.Kube.CoreV1().Pods(r.ns).Delete(t.Context(), old, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	nl, nt := r.waitLeader(term, false, time.Minute)
	t.Logf("deleted the leader's pod %s (term %d); %s leads (term %d), alone behind the Service %s later", old, term, nl, nt,
		time.Since(start).Round(time.Millisecond))
	w.WaitAcked(20, time.Minute)
	eventually(t, 2*time.Minute, "the StatefulSet to make the deleted pod again", func(ctx context.Context) (bool, error) {
		p, err := testCluster.Kube.CoreV1().Pods(r.ns).Get(ctx, old, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return p.UID != before.UID, nil
	})
	r.waitLeader(0, true, 2*time.Minute)
	w.WaitAcked(20, time.Minute)
	outs := outagesSince(w, start)
	everyOnlineClientOut(t, w, outs)
	atMostOncePerClient(t, "leader pod deleted", outs)
	checkP99(t, "leader pod deleted", outs, failoverGoal)
	w.Finish(3 * time.Minute)
}

// TestReplicatedRollingUpgrade changes the image of a 3-member broker
// under load: the operator rolls the followers, then moves the client
// Service to a prepared successor (a readiness handover), hands
// leadership to it and rolls the old leader. Goal: each client
// disconnected at most once, for at most rollGoal (p99); nothing
// acknowledged lost; the Service never without an endpoint.
func TestReplicatedRollingUpgrade(t *testing.T) {
	r := startReplicated(t, "ha3", 3)
	w := workload.Start(t, []string{r.svc}, rollWorkload)
	w.WaitAcked(20, time.Minute)
	_, term := r.waitLeader(0, true, time.Minute)
	before, err := testCluster.Agent.ServiceStats(r.ns, r.name, resources.PortMQTT)
	if err != nil {
		t.Fatal(err)
	}
	const upgraded = "ghcr.io/bollard-io/bollard:e2e-upgraded"
	start := time.Now()
	updateBroker(t, r.ns, r.name, func(b *v1alpha1.MQTTBroker) { b.Spec.Image = upgraded })
	eventually(t, 5*time.Minute, "every member running the new image", func(ctx context.Context) (bool, error) {
		for i := range r.members {
			p, err := testCluster.Kube.CoreV1().Pods(r.ns).Get(ctx, r.pod(i), metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			if p.Spec.Containers[0].Image != upgraded || p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning {
				return false, fmt.Errorf("%s: image %s, phase %s", p.Name, p.Spec.Containers[0].Image, p.Status.Phase)
			}
		}
		return true, nil
	})
	r.waitLeader(term, true, 2*time.Minute)
	waitBrokerCondition(t, r.ns, r.name, v1alpha1.ConditionReady, 2*time.Minute)
	t.Logf("rolled 3 members in %s", time.Since(start).Round(time.Millisecond))
	w.WaitAcked(20, time.Minute)
	outs := outagesSince(w, start)
	atMostOncePerClient(t, "rolling upgrade", outs)
	checkP99Within(t, "rolling upgrade", outs, rollGoal, rollSlack)
	waitEvent(t, r.ns, r.name, "HandoverStarted", time.Minute)
	leader, _ := r.waitLeader(term, true, time.Minute)
	var held struct {
		Served    uint64 `json:"heldServed"`
		TimedOut  uint64 `json:"heldTimedOut"`
		OverLimit uint64 `json:"heldOverLimit"`
		Abandoned uint64 `json:"heldAbandoned"`
	}
	if err := r.adminGet(t.Context(), leader, "/v1/cluster/handover", &held); err != nil {
		t.Fatal(err)
	}
	t.Logf("the new leader %s held %d connections until it served (refused: %d timed out, %d over the limit, %d abandoned)",
		leader, held.Served, held.TimedOut, held.OverLimit, held.Abandoned)
	after, err := testCluster.Agent.ServiceStats(r.ns, r.name, resources.PortMQTT)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the Service during the roll: %d connections forwarded, %d refused for want of an endpoint, %d dials failed",
		after.Forwarded-before.Forwarded, after.NoEndpoints-before.NoEndpoints, after.DialFailed-before.DialFailed)
	if n := after.NoEndpoints - before.NoEndpoints; n > 0 {
		t.Errorf("the Service had no endpoint for %d connections during the roll: the handover left it empty", n)
	}
	w.Finish(3 * time.Minute)
}

// TestReplicatedFailoverWithoutOperator stops the operator, then kills
// the leader's process and deletes the next leader's pod: clients come
// back through the Service each time, with nobody but Kubernetes (the
// StatefulSet controller, the node agent's readiness probes, the
// EndpointSlice controller) and the brokers acting. The operator then
// starts again and finds the broker Ready. Nothing acknowledged is lost.
func TestReplicatedFailoverWithoutOperator(t *testing.T) {
	r := startReplicated(t, "ha4", 3)
	w := workload.Start(t, []string{r.svc}, clusterWorkload)
	w.WaitAcked(20, time.Minute)
	testCluster.StopOperator()
	t.Cleanup(func() {
		// The other tests of the binary need it, whatever became of this one.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := testCluster.StartOperator(ctx); err != nil && !strings.Contains(err.Error(), "runs already") {
			t.Errorf("starting the operator again: %v", err)
		}
	})
	start := time.Now()
	old, term := r.waitLeader(0, true, time.Minute)
	if err := testCluster.Agent.KillPod(r.ns, old); err != nil {
		t.Fatal(err)
	}
	nl, nt := r.waitLeader(term, false, time.Minute)
	t.Logf("operator stopped; killed the leader %s (term %d); %s leads (term %d), alone behind the Service %s later", old, term, nl, nt,
		time.Since(start).Round(time.Millisecond))
	w.WaitAcked(20, time.Minute)
	nl, term = r.waitLeader(0, true, 2*time.Minute)
	at := time.Now()
	if err := testCluster.Kube.CoreV1().Pods(r.ns).Delete(t.Context(), nl, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	nl2, nt := r.waitLeader(term, false, time.Minute)
	t.Logf("operator stopped; deleted the leader's pod %s (term %d); %s leads (term %d), alone behind the Service %s later", nl, term, nl2, nt,
		time.Since(at).Round(time.Millisecond))
	w.WaitAcked(20, time.Minute)
	r.waitLeader(0, true, 2*time.Minute)
	outs := outagesSince(w, start)
	everyOnlineClientOut(t, w, outs)
	checkP99(t, "failovers without the operator", outs, failoverGoal)
	if err := testCluster.StartOperator(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitBrokerCondition(t, r.ns, r.name, v1alpha1.ConditionReady, 2*time.Minute)
	w.WaitAcked(20, time.Minute)
	w.Finish(3 * time.Minute)
}
