//go:build envtest

package controllers_test

import (
	"fmt"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/controllers"
	"github.com/bollard-io/bollard/controllers/resources"
)

// storageClass creates (once) a StorageClass that does or does not allow
// expansion; the apiserver's PersistentVolumeClaimResize admission checks it.
func storageClass(t *testing.T, name string, expandable bool) {
	t.Helper()
	sc := &storagev1.StorageClass{
		ObjectMeta:           metav1.ObjectMeta{Name: name},
		Provisioner:          "example.com/test",
		AllowVolumeExpansion: ptr.To(expandable),
	}
	if err := k8s.Create(ctx, sc); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// boundClaim plays the StatefulSet controller and a provisioner: the data
// claim of pod 0, bound, with the given capacity.
func boundClaim(t *testing.T, b *v1alpha1.MQTTBroker, class, size string) *corev1.PersistentVolumeClaim {
	t.Helper()
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: b.Namespace, Name: resources.PVCName(b, 0), Labels: resources.Labels(b)},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: ptr.To(class),
			VolumeName:       "pv-" + b.Namespace,
			Resources: corev1.VolumeResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)},
			},
		},
	}
	if err := k8s.Create(ctx, pvc); err != nil {
		t.Fatal(err)
	}
	pvc.Status = corev1.PersistentVolumeClaimStatus{
		Phase:       corev1.ClaimBound,
		AccessModes: pvc.Spec.AccessModes,
		Capacity:    corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)},
	}
	if err := k8s.Status().Update(ctx, pvc); err != nil {
		t.Fatal(err)
	}
	return pvc
}

func brokerWithVolume(ns, name, class, size string) *v1alpha1.MQTTBroker {
	b := newBroker(ns, name)
	b.Spec.Persistence.StorageClassName = ptr.To(class)
	b.Spec.Persistence.Size = resource.MustParse(size)
	return b
}

func TestGrowingSizeExpandsTheClaim(t *testing.T) {
	ns := namespace(t)
	storageClass(t, "expandable", true)
	b := observed(t, create(t, brokerWithVolume(ns, "grow", "expandable", "1Gi")))
	pvc := boundClaim(t, b, "expandable", "1Gi")
	markRunning(t, b)
	condition(t, b, v1alpha1.ConditionReady, metav1.ConditionTrue, "")

	update(t, b, func(b *v1alpha1.MQTTBroker) { b.Spec.Persistence.Size = resource.MustParse("2Gi") })
	eventually(t, func() error {
		if err := get(t, pvc, ns, pvc.Name); err != nil {
			return err
		}
		if got := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; got.Cmp(resource.MustParse("2Gi")) != 0 {
			return fmt.Errorf("claim request = %s, want 2Gi", got.String())
		}
		return nil
	})
	hasEvent(t, b, controllers.EventVolumeExpanding, "from 1Gi to 2Gi")
	// No resizer runs here: the capacity stays behind, and status says so.
	condition(t, b, v1alpha1.ConditionProgressing, metav1.ConditionTrue, v1alpha1.ReasonExpanding)
	condition(t, b, v1alpha1.ConditionDegraded, metav1.ConditionFalse, v1alpha1.ReasonAsExpected)
}

func TestExpansionRefusedByStorageClass(t *testing.T) {
	ns := namespace(t)
	storageClass(t, "fixed", false)
	b := observed(t, create(t, brokerWithVolume(ns, "fixed", "fixed", "1Gi")))
	boundClaim(t, b, "fixed", "1Gi")
	update(t, b, func(b *v1alpha1.MQTTBroker) { b.Spec.Persistence.Size = resource.MustParse("2Gi") })
	condition(t, b, v1alpha1.ConditionDegraded, metav1.ConditionTrue, v1alpha1.ReasonExpansionFailed)
	hasEvent(t, b, controllers.EventVolumeExpansionFailed, "cannot expand claim")
}

// TestShrinkRefused: the CRD refuses a shrinking update, but a new broker
// can find a larger claim retained from an earlier one of the same name.
func TestShrinkRefused(t *testing.T) {
	ns := namespace(t)
	storageClass(t, "expandable", true)
	b := brokerWithVolume(ns, "adopt", "expandable", "1Gi")
	boundClaim(t, b, "expandable", "5Gi")
	b = observed(t, create(t, b))
	condition(t, b, v1alpha1.ConditionDegraded, metav1.ConditionTrue, v1alpha1.ReasonShrinkRefused)
	hasEvent(t, b, controllers.EventVolumeShrinkRefused, "volumes cannot shrink")
	pvc := &corev1.PersistentVolumeClaim{}
	if err := get(t, pvc, ns, resources.PVCName(b, 0)); err != nil {
		t.Fatal(err)
	}
	if got := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; got.Cmp(resource.MustParse("5Gi")) != 0 {
		t.Errorf("claim request = %s, want it left at 5Gi", got.String())
	}
}

// TestReclaimPolicy: without a garbage collector in envtest, deletion is
// asserted through what drives it: the StatefulSet's claim retention
// policy (the StatefulSet controller deletes claims only for Delete) and
// the controller references checked in TestCreateMakesEveryChild.
func TestReclaimPolicy(t *testing.T) {
	ns := namespace(t)
	cases := map[string]appsv1.PersistentVolumeClaimRetentionPolicyType{
		v1alpha1.ReclaimRetain: appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
		v1alpha1.ReclaimDelete: appsv1.DeletePersistentVolumeClaimRetentionPolicyType,
	}
	for policy, want := range cases {
		t.Run(policy, func(t *testing.T) {
			b := newBroker(ns, strings.ToLower(policy))
			b.Spec.Persistence.ReclaimPolicy = policy
			b = observed(t, create(t, b))
			p := statefulSet(t, b).Spec.PersistentVolumeClaimRetentionPolicy
			if p == nil || p.WhenDeleted != want || p.WhenScaled != appsv1.RetainPersistentVolumeClaimRetentionPolicyType {
				t.Errorf("retention policy = %+v, want whenDeleted %s, whenScaled Retain", p, want)
			}
		})
	}
}
