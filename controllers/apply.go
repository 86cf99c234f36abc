package controllers

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/controllers/resources"
)

// apply makes the child named like want match it: CreateOrUpdate inside
// RetryOnConflict, with an Event per created or updated object. newObj
// returns an empty object of want's type; merge copies the fields the
// operator owns from want into the current object (leaving what the
// apiserver and other controllers fill in). It returns the object as
// stored.
func apply[T client.Object](ctx context.Context, r *MQTTBrokerReconciler, b *v1alpha1.MQTTBroker,
	want T, newObj func() T, merge func(cur, want T)) (T, controllerutil.OperationResult, error) {
	kind := want.GetObjectKind().GroupVersionKind().Kind
	if kind == "" {
		kind = reflect.TypeOf(want).Elem().Name()
	}
	var cur T
	var op controllerutil.OperationResult
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur = newObj()
		cur.SetName(want.GetName())
		cur.SetNamespace(want.GetNamespace())
		var err error
		op, err = controllerutil.CreateOrUpdate(ctx, r.Client, cur, func() error {
			if err := checkController(cur, b, kind); err != nil {
				return err
			}
			merge(cur, want)
			mergeMeta(cur, want)
			return nil
		})
		return err
	})
	switch {
	case err != nil:
		if apierrors.IsAlreadyExists(err) {
			err = fmt.Errorf("%s %s exists but is not managed by this MQTTBroker (it lacks the %s=%s label)",
				kind, want.GetName(), resources.LabelManagedBy, resources.ManagedBy)
		}
		r.event(b, nil, true, EventApplyFailed, "Apply", "%s %s: %v", kind, want.GetName(), err)
		return cur, op, fmt.Errorf("applying %s %s: %w", kind, want.GetName(), err)
	case op == controllerutil.OperationResultCreated:
		r.event(b, cur, false, EventCreated, "Create", "Created %s %s", kind, cur.GetName())
	case op == controllerutil.OperationResultUpdated:
		r.event(b, cur, false, EventUpdated, "Update", "Updated %s %s", kind, cur.GetName())
	}
	return cur, op, nil
}

// checkController refuses to touch an object another owner controls.
func checkController(cur client.Object, b *v1alpha1.MQTTBroker, kind string) error {
	if cur.GetResourceVersion() == "" {
		return nil
	}
	if ref := metav1.GetControllerOf(cur); ref != nil && ref.UID != b.UID {
		return fmt.Errorf("%s %s is controlled by %s %s, not by this MQTTBroker", kind, cur.GetName(), ref.Kind, ref.Name)
	}
	return nil
}

// mergeMeta adds want's labels and controller reference to cur, keeping
// what others added, and sets want's annotations with mergeAnnotations.
func mergeMeta(cur, want client.Object) {
	cur.SetLabels(mergeMap(cur.GetLabels(), want.GetLabels()))
	cur.SetAnnotations(mergeAnnotations(cur.GetAnnotations(), want.GetAnnotations()))
	refs := cur.GetOwnerReferences()
	for _, w := range want.GetOwnerReferences() {
		found := false
		for i := range refs {
			if refs[i].UID == w.UID {
				refs[i], found = w, true
			}
		}
		if !found {
			refs = append(refs, w)
		}
	}
	cur.SetOwnerReferences(refs)
}

func mergeMap(cur, want map[string]string) map[string]string {
	if len(want) == 0 {
		return cur
	}
	if cur == nil {
		cur = make(map[string]string, len(want))
	}
	for k, v := range want {
		cur[k] = v
	}
	return cur
}

// mergeAnnotations returns cur with want's annotations set and the ones
// the operator set before but want no longer has removed; annotations
// others added stay. What the operator set is listed, comma-separated, in
// resources.ManagedAnnotationsAnnotation (absent when it set none), so that
// removing a key from spec.service.annotations removes it from the Service.
func mergeAnnotations(cur, want map[string]string) map[string]string {
	prev := cur[resources.ManagedAnnotationsAnnotation]
	keys := make([]string, 0, len(want))
	for k := range want {
		if k != resources.ManagedAnnotationsAnnotation {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	list := strings.Join(keys, ",")
	if prev == "" && list == "" {
		return cur
	}
	out := maps.Clone(cur)
	if out == nil {
		out = make(map[string]string, len(want)+1)
	}
	for _, k := range strings.Split(prev, ",") {
		if _, keep := want[k]; !keep {
			delete(out, k)
		}
	}
	for _, k := range keys {
		out[k] = want[k]
	}
	if list == "" {
		delete(out, resources.ManagedAnnotationsAnnotation)
	} else {
		out[resources.ManagedAnnotationsAnnotation] = list
	}
	return out
}

func mergeServiceAccount(cur, want *corev1.ServiceAccount) {
	cur.AutomountServiceAccountToken = want.AutomountServiceAccountToken
}

func mergeConfigMap(cur, want *corev1.ConfigMap) {
	cur.Data = want.Data
	cur.BinaryData = nil
}

// mergeService sets the ports, selector, type, load balancer source
// ranges and external traffic policy, keeping what the apiserver
// allocated: the cluster IP, node ports while the type still uses them,
// and the health check node port of a Local policy.
func mergeService(cur, want *corev1.Service) {
	ports := append([]corev1.ServicePort(nil), want.Spec.Ports...)
	if want.Spec.Type != corev1.ServiceTypeClusterIP {
		for i := range ports {
			for _, old := range cur.Spec.Ports {
				if old.Name == ports[i].Name {
					ports[i].NodePort = old.NodePort
				}
			}
		}
	}
	cur.Spec.Ports = ports
	cur.Spec.Selector = want.Spec.Selector
	cur.Spec.Type = want.Spec.Type
	cur.Spec.LoadBalancerSourceRanges = want.Spec.LoadBalancerSourceRanges
	cur.Spec.ExternalTrafficPolicy = want.Spec.ExternalTrafficPolicy
	cur.Spec.PublishNotReadyAddresses = want.Spec.PublishNotReadyAddresses
	if cur.ResourceVersion == "" {
		cur.Spec.ClusterIP = want.Spec.ClusterIP
	}
}

// mergeStatefulSet rewrites the spec when the desired spec changed (its
// digest differs from the one last written) or when someone changed a
// field the operator owns (statefulSetDrift). Fields the apiserver defaults
// never count as drift, so a steady state makes no writes. The fields the
// apiserver will not change after creation are kept: the selector, the
// service name, the pod management policy and the volume claim templates
// (claims are expanded directly, see expandVolumes).
func mergeStatefulSet(cur, want *appsv1.StatefulSet) {
	if cur.ResourceVersion == "" {
		cur.Spec = want.Spec
		return
	}
	if cur.Annotations[resources.SpecHashAnnotation] == want.Annotations[resources.SpecHashAnnotation] &&
		len(statefulSetDrift(cur, want)) == 0 {
		return
	}
	keep := cur.Spec
	cur.Spec = *want.Spec.DeepCopy()
	cur.Spec.Selector = keep.Selector
	cur.Spec.ServiceName = keep.ServiceName
	cur.Spec.PodManagementPolicy = keep.PodManagementPolicy
	cur.Spec.VolumeClaimTemplates = keep.VolumeClaimTemplates
}

// statefulSetDrift lists the fields of cur's spec that someone changed
// away from want (see driftPaths), leaving out the immutable ones. Others
// may add pod template annotations (`kubectl rollout restart` does); the
// ones the operator sets must keep their values.
//
// Only while the desired spec is the one cur was written with (same spec
// digest) can a difference be told apart from the operator's own change:
// when the MQTTBroker changed (a new image, say), cur differs from want
// because of that change, and reporting it as drift would blame someone
// else for it. Then nothing is drift; the rewrite follows from the digest
// alone (mergeStatefulSet) and the Restarted event names its cause.
func statefulSetDrift(cur, want *appsv1.StatefulSet) []string {
	if cur.ResourceVersion == "" ||
		cur.Annotations[resources.SpecHashAnnotation] != want.Annotations[resources.SpecHashAnnotation] {
		return nil
	}
	owned := want.Spec.DeepCopy()
	owned.Selector = nil
	owned.ServiceName = ""
	owned.PodManagementPolicy = ""
	owned.VolumeClaimTemplates = nil
	return driftPaths("spec", *owned, cur.Spec, driftOptions{openMaps: map[string]bool{
		"spec.template.metadata.annotations": true,
	}})
}

func mergePodDisruptionBudget(cur, want *policyv1.PodDisruptionBudget) {
	cur.Spec.MaxUnavailable = want.Spec.MaxUnavailable
	cur.Spec.MinAvailable = nil
	cur.Spec.Selector = want.Spec.Selector
}

func mergeNetworkPolicy(cur, want *networkingv1.NetworkPolicy) {
	cur.Spec = *want.Spec.DeepCopy()
}
