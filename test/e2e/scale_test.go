//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/controllers/resources"
	"github.com/bollard-io/bollard/test/e2e/nodeagent"
	"github.com/bollard-io/bollard/test/history/workload"
)

// scaleMessagesEnv overrides how many acknowledged messages are queued
// before the scale (default 100000).
const scaleMessagesEnv = "BOLLARD_E2E_SCALE_MESSAGES"

func scaleMessages() uint64 {
	if n, err := strconv.ParseUint(os.Getenv(scaleMessagesEnv), 10, 64); err == nil && n > 0 {
		return n
	}
	return 100_000
}

// scaleWorkload: four publishers at each QoS, and one online and one
// offline persistent subscriber at each QoS; the offline ones hold every
// message queued until Finish.
var scaleWorkload = workload.Config{PerQoS: 4, Online: 1, Offline: 1}

// snapshotView is the part of GET /v1/cluster that tells how a member
// caught up.
type snapshotView struct {
	ID                string `json:"id"`
	Role              string `json:"role"`
	LastSnapshotIndex uint64 `json:"lastSnapshotIndex"`
	Members           []struct {
		ID    string `json:"id"`
		Voter bool   `json:"voter"`
	} `json:"members"`
}

// snapshotViewOf reads GET /v1/cluster of a member's pod (r.view reads
// the rest).
func (r *replicated) snapshotViewOf(ctx context.Context, pod string) (snapshotView, error) {
	var v snapshotView
	p, err := testCluster.Kube.CoreV1().Pods(r.ns).Get(ctx, pod, metav1.GetOptions{})
	if err != nil {
		return v, err
	}
	ports, err := nodeagent.PortMap(p)
	if err != nil {
		return v, err
	}
	if _, err := r.view(ctx, pod); err != nil { // caches the admin token
		return v, err
	}
	admin := ports[resources.PortAdmin]
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/v1/cluster", nil)
	if err != nil {
		return v, err
	}
	return v, getJSON(req, &v)
}

// TestScaleOneToThree: a single node with 100k acknowledged messages
// queued for persistent QoS 1 and QoS 2 subscribers (and publishers still
// publishing) becomes a 3-member cluster: the single node restarts once
// as member 0, adopting its store, and the other two join through it,
// installing the adopted store's snapshot. Then the leader's pod is
// deleted, so that a member that joined serves, and the offline
// subscribers come back through the Service: every acknowledged message
// is delivered, per-publisher order kept, QoS 2 exactly once.
func TestScaleOneToThree(t *testing.T) {
	ns := namespace(t, "grow")
	b := newBroker(ns, "grow")
	createBroker(t, b, 3*time.Minute)
	r := &replicated{t: t, ns: ns, name: b.Name, members: 3, svc: serviceAddr(t, ns, resources.ServiceName(b), resources.PortMQTT)}
	w := workload.Start(t, []string{r.svc}, scaleWorkload)
	want := scaleMessages()
	eventually(t, 20*time.Minute, fmt.Sprintf("%d acknowledged messages queued", want), func(context.Context) (bool, error) {
		if n := w.Acked(); n < want {
			return false, fmt.Errorf("%d acknowledged", n)
		}
		return true, nil
	})
	t.Logf("%d messages acknowledged by the single node; scaling to 3", w.Acked())

	start := time.Now()
	updateBroker(t, ns, b.Name, func(b *v1alpha1.MQTTBroker) { b.Spec.Replicas = ptr.To(int32(3)) })
	leader, term := r.waitLeader(0, true, 10*time.Minute)
	t.Logf("3 members follow %s (term %d) %s after the scale", leader, term, time.Since(start).Round(time.Millisecond))
	waitBrokerCondition(t, ns, b.Name, v1alpha1.ConditionReady, 2*time.Minute)
	eventually(t, 2*time.Minute, "3 voters, the joiners caught up by snapshot", func(ctx context.Context) (bool, error) {
		lv, err := r.snapshotViewOf(ctx, leader)
		if err != nil {
			return false, err
		}
		voters := 0
		for _, m := range lv.Members {
			if m.Voter {
				voters++
			}
		}
		if voters != 3 {
			return false, fmt.Errorf("%d voters in %+v", voters, lv.Members)
		}
		for i := 1; i < 3; i++ {
			v, err := r.snapshotViewOf(ctx, r.pod(i))
			if err != nil {
				return false, err
			}
			if v.LastSnapshotIndex == 0 {
				return false, fmt.Errorf("%s caught up without a snapshot", r.pod(i))
			}
		}
		return true, nil
	})
	outs := outagesSince(w, start)
	t.Logf("scale 1 -> 3: client outages %s", workload.Durations(lengths(outs)))
	w.WaitAcked(20, 2*time.Minute)

	// A member that joined serves the adopted data.
	if err := testCluster.Kube.CoreV1().Pods(ns).Delete(t.Context(), leader, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	nl, nt := r.waitLeader(term, false, 2*time.Minute)
	t.Logf("deleted the leader's pod %s; %s leads (term %d)", leader, nl, nt)
	w.WaitAcked(20, 2*time.Minute)
	rep := w.Finish(15 * time.Minute)
	if uint64(rep.Acked) < want {
		t.Errorf("%d acknowledged in all, want at least %d", rep.Acked, want)
	}
}
