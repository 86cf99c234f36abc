package controllers

import (
	"context"
	"fmt"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bollard-io/bollard/controllers/resources"
)

// Scaling a single node to a cluster (spec.replicas 1 -> 3 or 5): the
// single node's pod restarts once as the cluster's member 0, which adopts
// its store (the broker's adoption, docs/architecture.md), then the other
// members join through it like any grown member. Three things differ
// from a cluster created as one:
//
//   - the single node's StatefulSet manages its pods OrderedReady, which
//     a cluster cannot use (followers are never Ready, so member 2 would
//     wait for member 1 forever) and the apiserver does not let change:
//     it is deleted with its pods orphaned, and created again as the
//     cluster's (the pod and its claim are adopted by name and labels);
//   - until member 0 leads, the StatefulSet keeps member 0 alone, listing
//     itself as the only member, with --cluster-bootstrap
//     (resources.Params.Adopting);
//   - member 0's pod, on the single node's template, is deleted once
//     (members.Adopt) so that it restarts as a member.

// AdoptAnnotation marks member 0's claim while a single node becomes the
// cluster's member 0: set before the single node's StatefulSet is
// deleted, removed once member 0 leads. While the StatefulSet is gone,
// it is what says so even when the single node's pod is gone too (a
// cluster created then would bootstrap its other members without the
// single node's data).
const AdoptAnnotation = "mqtt.bollard.io/adopting-single-node"

// adoptingSingle decides resources.Params.Adopting: a single node is
// becoming the cluster's member 0 and no member leads yet. It is read
// from the objects themselves, so an operator restart in the middle
// finds it again: the StatefulSet still runs a single node, or it lists
// member 0 alone with --cluster-bootstrap; while the single node's
// StatefulSet is gone (deleted with its pods orphaned), member 0's claim
// carries AdoptAnnotation (claimMarked), or a pod runs a single node.
func adoptingSingle(exists bool, cur *appsv1.StatefulSet, pods []corev1.Pod, claimMarked, formed bool) bool {
	if formed {
		return false
	}
	if !exists && claimMarked {
		return true
	}
	if exists {
		ps := &cur.Spec.Template.Spec
		if !resources.RunsMember(ps) {
			return true
		}
		return resources.ListedMembers(ps) == 1 && slices.ContainsFunc(ps.Containers, func(c corev1.Container) bool {
			return slices.Contains(c.Args, "--cluster-bootstrap")
		})
	}
	for i := range pods {
		if pods[i].DeletionTimestamp.IsZero() && !resources.RunsMember(&pods[i].Spec) {
			return true
		}
	}
	return false
}

// replaceSingleStatefulSet deletes a single node's StatefulSet, orphaning
// its pod (which goes on serving), so that the cluster's can be created
// with the pod management it needs. Nothing to do once it is gone, or
// deleting, or already a cluster's, or while the spec renders no valid
// configuration.
func (r *MQTTBrokerReconciler) replaceSingleStatefulSet(ctx context.Context, p *pass, cur *appsv1.StatefulSet, exists bool) error {
	if !exists || !cur.DeletionTimestamp.IsZero() || cur.Spec.PodManagementPolicy == appsv1.ParallelPodManagement {
		return nil
	}
	if p.cfg == nil {
		// The spec renders no valid configuration: no cluster's
		// StatefulSet could be created in its place.
		return nil
	}
	b := p.broker
	if err := r.markClaim(ctx, p, true); err != nil {
		return err
	}
	uid := cur.UID
	err := r.Client.Delete(ctx, cur, client.PropagationPolicy(metav1.DeletePropagationOrphan),
		client.Preconditions{UID: &uid})
	if err != nil && !apierrors.IsNotFound(err) {
		r.event(b, cur, true, EventApplyFailed, "Scale", "StatefulSet %s: %v", cur.Name, err)
		return fmt.Errorf("replacing the single node's StatefulSet %s: %w", cur.Name, err)
	}
	r.event(b, cur, false, EventUpdated, "Scale",
		"Replacing StatefulSet %s with a cluster's (its pod keeps serving until it restarts as the cluster's first member)", cur.Name)
	return nil
}

// claimMarked reports whether member 0's claim carries AdoptAnnotation.
func (r *MQTTBrokerReconciler) claimMarked(ctx context.Context, p *pass) (bool, error) {
	pvc := &corev1.PersistentVolumeClaim{}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: p.broker.Namespace, Name: resources.PVCName(p.broker, 0)}, pvc)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	_, ok := pvc.Annotations[AdoptAnnotation]
	return ok, nil
}

// markClaim sets (on) or removes AdoptAnnotation on member 0's claim; a
// claim that does not exist holds no single node's data to mark.
func (r *MQTTBrokerReconciler) markClaim(ctx context.Context, p *pass, on bool) error {
	pvc := &corev1.PersistentVolumeClaim{}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: p.broker.Namespace, Name: resources.PVCName(p.broker, 0)}, pvc)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, has := pvc.Annotations[AdoptAnnotation]; has == on {
		return nil
	}
	patch := client.MergeFrom(pvc.DeepCopy())
	if on {
		if pvc.Annotations == nil {
			pvc.Annotations = map[string]string{}
		}
		pvc.Annotations[AdoptAnnotation] = "true"
	} else {
		delete(pvc.Annotations, AdoptAnnotation)
	}
	if err := r.Client.Patch(ctx, pvc, patch); err != nil {
		return fmt.Errorf("claim %s: %w", pvc.Name, err)
	}
	return nil
}
