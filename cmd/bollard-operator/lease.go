package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// leaseOwner makes the leader's own Pod the owner of the leader election
// Lease once it is elected. A leader that stops normally releases the
// Lease itself (LeaderElectionReleaseOnCancel), but `helm uninstall`
// deletes the chart's RBAC right after the Deployment, before the
// operator has even been told to stop: its release is then forbidden and
// a reinstall waited out the lease (~17 s). With the Pod as owner, the
// garbage collector deletes the Lease when the Pod goes, whatever RBAC is
// left. A new leader makes its own Pod the owner (a Lease deleted under a
// leader is created again by its next renewal).
//
// It needs POD_NAME and POD_UID (the chart sets them from the downward
// API); without them it does nothing.
type leaseOwner struct {
	c         client.Client
	namespace string
	name      string
	pod       metav1.OwnerReference
}

// newLeaseOwner returns nil when the pod's identity or the Lease's
// namespace is unknown.
func newLeaseOwner(c client.Client, leaseNS, leaseName string) *leaseOwner {
	pod, uid := os.Getenv("POD_NAME"), os.Getenv("POD_UID")
	if leaseNS == "" {
		leaseNS = podNamespace()
	}
	if pod == "" || uid == "" || leaseNS == "" {
		return nil
	}
	return &leaseOwner{c: c, namespace: leaseNS, name: leaseName, pod: metav1.OwnerReference{
		APIVersion: "v1", Kind: "Pod", Name: pod, UID: types.UID(uid),
	}}
}

// Start runs once the operator is elected (a manager Runnable that needs
// leader election).
func (l *leaseOwner) Start(ctx context.Context) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"ownerReferences": []metav1.OwnerReference{l.pod},
	}})
	if err != nil {
		return err
	}
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: l.namespace, Name: l.name}}
	if err := l.c.Patch(ctx, lease, client.RawPatch(types.MergePatchType, patch)); err != nil {
		// Not fatal: only a reinstall right after an uninstall waits longer.
		ctrl.Log.Error(fmt.Errorf("leader election Lease %s/%s: owning it by pod %s: %w", l.namespace, l.name, l.pod.Name, err),
			"the Lease outlives this pod if the RBAC is deleted first")
		return nil
	}
	ctrl.Log.Info("leader election Lease owned by this pod", "lease", l.namespace+"/"+l.name, "pod", l.pod.Name)
	return nil
}
