package nodeagent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// claimPrefix marks claim keys in the work queue, which otherwise holds
// pod keys.
const claimPrefix = "claim:"

// ProvisionedByAnnotation marks the PersistentVolumes the agent created.
const ProvisionedByAnnotation = "pv.kubernetes.io/provisioned-by"

const provisionerName = "e2e.bollard.io/hostpath"

func (a *Agent) onClaim(obj any) {
	c, ok := obj.(*corev1.PersistentVolumeClaim)
	if !ok {
		return
	}
	if c.Spec.VolumeName == "" && c.DeletionTimestamp == nil {
		a.queue.Add(claimPrefix + podKey(c.Namespace, c.Name))
	}
	// A pod may be waiting for this claim's volume.
	a.enqueueAll()
}

// syncClaim provisions a hostPath volume pre-bound to a pending claim; the
// PV controller in kube-controller-manager completes the binding.
func (a *Agent) syncClaim(ctx context.Context, key string) error {
	ns, name, _ := strings.Cut(key, "/")
	c, err := a.pvcs.PersistentVolumeClaims(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("nodeagent: claim %s: %w", key, err)
	}
	if c.Spec.VolumeName != "" || c.DeletionTimestamp != nil {
		return nil
	}
	pvName := "pvc-" + string(c.UID)
	if _, err := a.pvs.Get(pvName); err == nil {
		return nil
	}
	dir := filepath.Join(a.opts.WorkDir, "volumes", fmt.Sprintf("%s_%s_%s", ns, name, c.UID))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("nodeagent: volume dir: %w", err)
	}
	pv := claimVolume(c, pvName, dir)
	if _, err := a.kube.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil &&
		!apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("nodeagent: provisioning %s for %s: %w", pvName, key, err)
	}
	a.log.Info("provisioned volume", "claim", key, "pv", pvName, "dir", dir)
	return nil
}

// claimVolume is a hostPath PersistentVolume of the claim's size, class and
// access modes, reserved for it by claimRef.
func claimVolume(c *corev1.PersistentVolumeClaim, name, dir string) *corev1.PersistentVolume {
	size := c.Spec.Resources.Requests[corev1.ResourceStorage]
	if size.IsZero() {
		size = resource.MustParse("1Gi")
	}
	class := ""
	if c.Spec.StorageClassName != nil {
		class = *c.Spec.StorageClassName
	}
	hostPathType := corev1.HostPathDirectory
	return &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{ProvisionedByAnnotation: provisionerName},
		},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: size},
			AccessModes:                   c.Spec.AccessModes,
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			StorageClassName:              class,
			VolumeMode:                    c.Spec.VolumeMode,
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{
				Path: dir, Type: &hostPathType,
			}},
			ClaimRef: &corev1.ObjectReference{
				APIVersion: "v1", Kind: "PersistentVolumeClaim",
				Namespace: c.Namespace, Name: c.Name, UID: c.UID,
			},
		},
	}
}

// claimDir is the local directory of a bound claim, or an error while the
// claim is not bound yet.
func (a *Agent) claimDir(ns, claim string) (string, error) {
	c, err := a.pvcs.PersistentVolumeClaims(ns).Get(claim)
	if err != nil {
		return "", fmt.Errorf("nodeagent: claim %s/%s: %w", ns, claim, err)
	}
	if c.Spec.VolumeName == "" {
		return "", fmt.Errorf("nodeagent: claim %s/%s is not bound yet", ns, claim)
	}
	pv, err := a.pvs.Get(c.Spec.VolumeName)
	if err != nil {
		return "", fmt.Errorf("nodeagent: volume of claim %s/%s: %w", ns, claim, err)
	}
	if pv.Spec.HostPath == nil {
		return "", fmt.Errorf("nodeagent: volume %s is not a hostPath volume", pv.Name)
	}
	return pv.Spec.HostPath.Path, nil
}
