//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/bollard-io/bollard/test/history/workload"
)

// TestReplicatedMemberMovedOffCordonedNode cordons the node of a 3-member
// broker under load, as `kubectl drain` does before its evictions (which
// the PodDisruptionBudget refuses: only the leader is Ready). With the real
// scheduler, StatefulSet controller and kubelet (the node agent): the
// operator moves one follower off the node (its pod recreated, and Pending:
// this cluster has no other node), and no other member while that one is
// not back, which would leave fewer than a quorum; uncordoned, the member
// comes back and the cluster is whole, nothing acknowledged lost.
func TestReplicatedMemberMovedOffCordonedNode(t *testing.T) {
	r := startReplicated(t, "ha7", 3)
	w := workload.Start(t, []string{r.svc}, clusterWorkload)
	w.WaitAcked(20, time.Minute)
	leader, _ := r.waitLeader(0, true, time.Minute)
	uids := map[string]types.UID{}
	for i := range r.members {
		p, err := testCluster.Kube.CoreV1().Pods(r.ns).Get(t.Context(), r.pod(i), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		uids[p.Name] = p.UID
	}
	node := testCluster.Agent.NodeName()
	setUnschedulable := func(ctx context.Context, v bool) error {
		patch := fmt.Sprintf(`{"spec":{"unschedulable":%t}}`, v)
		_, err := testCluster.Kube.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		return err
	}
	t.Cleanup(func() {
		if err := setUnschedulable(context.Background(), false); err != nil {
			t.Errorf("uncordon %s: %v", node, err)
		}
	})
	if err := setUnschedulable(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	start := time.Now()

	// Within the operator's status refresh (30 s) and a graceful stop.
	var moved string
	eventually(t, 2*time.Minute, "a follower moved off the cordoned node", func(ctx context.Context) (bool, error) {
		for i := range r.members {
			p, err := testCluster.Kube.CoreV1().Pods(r.ns).Get(ctx, r.pod(i), metav1.GetOptions{})
			if err != nil {
				continue // deleted, not yet made again
			}
			if p.UID != uids[p.Name] {
				moved = p.Name
				return p.Spec.NodeName == "", nil // made again, and Pending
			}
		}
		return false, nil
	})
	if moved == leader {
		t.Fatalf("the leader %s moved first", leader)
	}
	t.Logf("%s moved %s after the cordon; its pod is Pending", moved, time.Since(start).Round(time.Millisecond))
	events, err := testCluster.Kube.EventsV1().Events(r.ns).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !hasMoveEvent(events.Items, moved) {
		t.Errorf("no MemberRolled Event naming %s and the cordoned node", moved)
	}
	// The other two stay: moving one would leave 1 of 3 caught up.
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		for i := range r.members {
			name := r.pod(i)
			if name == moved {
				continue
			}
			p, err := testCluster.Kube.CoreV1().Pods(r.ns).Get(t.Context(), name, metav1.GetOptions{})
			if err != nil || p.UID != uids[name] || p.DeletionTimestamp != nil {
				t.Fatalf("%s moved too while %s was not back (err %v): the quorum was at risk", name, moved, err)
			}
		}
		time.Sleep(500 * time.Millisecond)
	}

	if err := setUnschedulable(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	r.waitLeader(0, true, 3*time.Minute)
	w.WaitAcked(20, time.Minute)
	w.Finish(3 * time.Minute)
}

// hasMoveEvent reports whether an Event says that member was moved off a
// cordoned node.
func hasMoveEvent(events []eventsv1.Event, member string) bool {
	for _, e := range events {
		if e.Reason == "MemberRolled" && strings.Contains(e.Note, member) && strings.Contains(e.Note, "cordoned") {
			return true
		}
	}
	return false
}
