//go:build envtest

package controllers_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/controllers"
	"github.com/bollard-io/bollard/controllers/resources"
)

// TestClusterAdoptSingle: replicas 1 -> 3 and 1 -> 5. The single node's StatefulSet
// is replaced (its pod orphaned, still serving), member 0 is restarted
// once onto the cluster's template, listed alone and bootstrapping, while
// no member leads the status says so (not Ready, no leader); once member
// 0 leads, the StatefulSet grows to n without --cluster-bootstrap and the
// others join through the leader. Member 0 restarts exactly once.
func TestClusterAdoptSingle(t *testing.T) {
	for _, n := range []int32{3, 5} {
		t.Run(fmt.Sprint(n), func(t *testing.T) { adoptSingle(t, n) })
	}
}

// adoptSingle scales a single node to n members.
func adoptSingle(t *testing.T, n int32) {
	ns := namespace(t)
	b := observed(t, create(t, newBroker(ns, "adopt")))
	single := statefulSet(t, b)
	if single.Spec.PodManagementPolicy == appsv1.ParallelPodManagement {
		t.Fatalf("a single node's StatefulSet is %s", single.Spec.PodManagementPolicy)
	}
	playStatefulSet(t, b)
	name0 := resources.MemberName(b, 0)
	singlePod := &corev1.Pod{}
	eventually(t, func() error { return get(t, singlePod, ns, name0) })
	// Member 0's claim, which the StatefulSet controller would have made.
	claim := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: resources.PVCName(b, 0), Labels: resources.Labels(b)},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
	if err := k8s.Create(ctx, claim); err != nil {
		t.Fatal(err)
	}
	marked := false

	update(t, b, func(b *v1alpha1.MQTTBroker) { b.Spec.Replicas = ptr.To(n) })
	// The garbage collector, which envtest does not run, orphans the pod
	// and lets the old StatefulSet go.
	eventually(t, func() error {
		sts := &appsv1.StatefulSet{}
		if err := get(t, sts, ns, resources.StatefulSetName(b)); err != nil {
			return err
		}
		if !sts.DeletionTimestamp.IsZero() {
			c := &corev1.PersistentVolumeClaim{}
			if err := get(t, c, ns, claim.Name); err != nil {
				return err
			}
			_, marked = c.Annotations[controllers.AdoptAnnotation]
			if !marked {
				t.Error("the single node's StatefulSet is deleted before member 0's claim is marked")
			}
			sts.Finalizers = nil
			if err := k8s.Update(ctx, sts); err != nil {
				return err
			}
			return errors.New("the single node's StatefulSet is going")
		}
		if sts.UID == single.UID {
			return errors.New("the single node's StatefulSet is still there")
		}
		ps := &sts.Spec.Template.Spec
		if *sts.Spec.Replicas != 1 || sts.Spec.PodManagementPolicy != appsv1.ParallelPodManagement ||
			!resources.RunsMember(ps) || resources.ListedMembers(ps) != 1 || !slices.Contains(args(sts), "--cluster-bootstrap") {
			return fmt.Errorf("adopting StatefulSet: %d pods, %s, %d members listed, args %q",
				*sts.Spec.Replicas, sts.Spec.PodManagementPolicy, resources.ListedMembers(ps), args(sts))
		}
		return nil
	})
	// Member 0 restarts onto the cluster's template.
	memberPod := &corev1.Pod{}
	eventually(t, func() error {
		if err := get(t, memberPod, ns, name0); err != nil {
			return err
		}
		if !resources.RunsMember(&memberPod.Spec) {
			return errors.New("member 0 still runs the single node")
		}
		return nil
	})
	if memberPod.UID == singlePod.UID {
		t.Fatal("member 0 runs a member in the single node's pod")
	}
	// No member leads yet: the status says so and claims nothing more.
	condition(t, b, v1alpha1.ConditionReady, metav1.ConditionFalse, "")
	cur := &v1alpha1.MQTTBroker{}
	if err := get(t, cur, ns, b.Name); err != nil {
		t.Fatal(err)
	}
	if cur.Status.Leader != "" || (cur.Status.Cluster != nil && cur.Status.Cluster.HealthyMembers != nil) {
		t.Fatalf("status while adopting: leader %q, cluster %+v", cur.Status.Leader, cur.Status.Cluster)
	}

	// Member 0 adopted its store and leads alone.
	brokers.setCluster(ns, name0, name0)
	host := func(id string) string { return id + "." + resources.HeadlessServiceName(b) + "." + ns + ".svc:8081" }
	eventually(t, func() error {
		var want []string
		for i := 1; i < int(n); i++ {
			id := resources.MemberName(b, i)
			want = append(want, "add "+id+" "+host(id))
		}
		if got := brokers.clusterCalls(ns); !slices.Equal(got, want) {
			return fmt.Errorf("calls %q, want %q", got, want)
		}
		return nil
	})
	sts := statefulSet(t, b)
	if *sts.Spec.Replicas != n || resources.ListedMembers(&sts.Spec.Template.Spec) != int(n) || slices.Contains(args(sts), "--cluster-bootstrap") {
		t.Fatalf("formed StatefulSet: %d pods, args %q", *sts.Spec.Replicas, args(sts))
	}
	condition(t, b, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonLeaderServing)
	last := &corev1.Pod{}
	if err := get(t, last, ns, name0); err != nil {
		t.Fatal(err)
	}
	if last.UID != memberPod.UID {
		t.Fatal("member 0 restarted a second time")
	}
	if err := get(t, cur, ns, b.Name); err != nil {
		t.Fatal(err)
	}
	if c := meta.FindStatusCondition(cur.Status.Conditions, v1alpha1.ConditionDegraded); c == nil || c.Status != metav1.ConditionFalse {
		t.Errorf("Degraded after adopting: %+v", c)
	}
	if cur.Status.Leader != name0 {
		t.Errorf("leader %q, want %s", cur.Status.Leader, name0)
	}
	if !marked {
		t.Error("member 0's claim was never seen marked while the StatefulSet was replaced")
	}
	eventually(t, func() error {
		c := &corev1.PersistentVolumeClaim{}
		if err := get(t, c, ns, claim.Name); err != nil {
			return err
		}
		if _, ok := c.Annotations[controllers.AdoptAnnotation]; ok {
			return errors.New("member 0's claim still marked once it leads")
		}
		return nil
	})
}
