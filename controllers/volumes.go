package controllers

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/controllers/resources"
)

// expandVolumes makes the broker's data claims as large as
// spec.persistence.size. A StatefulSet's claim templates cannot change, so
// the existing claims are patched directly; this works when their
// StorageClass allows expansion, and the apiserver's refusal is reported
// otherwise. A smaller size is refused: volumes cannot shrink (the CRD
// refuses a shrinking update, but a new MQTTBroker may adopt larger claims
// retained from an earlier one).
func (r *MQTTBrokerReconciler) expandVolumes(ctx context.Context, p *pass) error {
	b := p.broker
	var claims corev1.PersistentVolumeClaimList
	if err := r.Client.List(ctx, &claims, client.InNamespace(b.Namespace), client.MatchingLabels(resources.SelectorLabels(b))); err != nil {
		return err
	}
	want := b.Spec.Persistence.Size
	prefix := resources.DataVolume + "-" + resources.StatefulSetName(b) + "-"
	for i := range claims.Items {
		pvc := &claims.Items[i]
		if !strings.HasPrefix(pvc.Name, prefix) {
			continue
		}
		have := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
		switch want.Cmp(have) {
		case -1:
			msg := fmt.Sprintf("spec.persistence.size %s is smaller than claim %s (%s): volumes cannot shrink; set it to at least %s",
				want.String(), pvc.Name, have.String(), have.String())
			p.problem(v1alpha1.ReasonShrinkRefused, "%s", msg)
			r.event(b, pvc, true, EventVolumeShrinkRefused, "Resize", "%s", msg)
		case 1:
			if err := r.expandClaim(ctx, p, pvc, have); err != nil {
				return err
			}
		}
		capacity, ok := pvc.Status.Capacity[corev1.ResourceStorage]
		request := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
		if ok && capacity.Cmp(request) < 0 {
			p.obs.Expanding = append(p.obs.Expanding, fmt.Sprintf("%s (%s of %s)", pvc.Name, capacity.String(), request.String()))
		}
	}
	return nil
}

// expandClaim raises pvc's request to the spec's size. A refusal by the
// apiserver (Forbidden or Invalid: the StorageClass does not allow
// expansion, the claim is not bound) is a problem for the user, not a
// reason to retry.
func (r *MQTTBrokerReconciler) expandClaim(ctx context.Context, p *pass, pvc *corev1.PersistentVolumeClaim, have resource.Quantity) error {
	b := p.broker
	want := b.Spec.Persistence.Size
	patch := client.MergeFrom(pvc.DeepCopy())
	pvc.Spec.Resources.Requests[corev1.ResourceStorage] = want
	err := r.Client.Patch(ctx, pvc, patch)
	if err != nil {
		pvc.Spec.Resources.Requests[corev1.ResourceStorage] = have
	}
	if apierrors.IsForbidden(err) || apierrors.IsInvalid(err) {
		msg := fmt.Sprintf("cannot expand claim %s from %s to %s: %v", pvc.Name, have.String(), want.String(), err)
		p.problem(v1alpha1.ReasonExpansionFailed, "%s", msg)
		r.event(b, pvc, true, EventVolumeExpansionFailed, "Resize", "%s", msg)
		return nil
	}
	if err != nil {
		return err
	}
	r.event(b, pvc, false, EventVolumeExpanding, "Resize", "Expanding claim %s from %s to %s", pvc.Name, have.String(), want.String())
	return nil
}
