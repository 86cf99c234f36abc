package controllers

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/controllers/resources"
)

// CacheOptions restrict the manager's cache to what the operator needs:
// child objects and broker pods are cached only when they carry the
// operator's managed-by label, and (when namespaces is not empty) only in
// those namespaces. Secrets are watched as metadata only.
func CacheOptions(namespaces []string) cache.Options {
	managed := labels.SelectorFromSet(labels.Set{resources.LabelManagedBy: resources.ManagedBy})
	o := cache.Options{ByObject: map[client.Object]cache.ByObject{}}
	for _, obj := range []client.Object{
		&corev1.ServiceAccount{}, &corev1.ConfigMap{}, &corev1.Service{}, &appsv1.StatefulSet{},
		&policyv1.PodDisruptionBudget{}, &corev1.PersistentVolumeClaim{}, &corev1.Pod{},
	} {
		o.ByObject[obj] = cache.ByObject{Label: managed}
	}
	if len(namespaces) > 0 {
		o.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range namespaces {
			o.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	return o
}

// SetupWithManager registers the reconciler and its watches: the
// MQTTBroker (spec and annotation changes), its children, its pods and
// claims (by label), and the Secrets it references. There is no periodic
// resync; the only timed requeue waits for brokers to apply a new
// configuration.
func (r *MQTTBrokerReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if r.ConfigBackoff == nil {
		r.ConfigBackoff = workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](500*time.Millisecond, 30*time.Second)
	}
	if r.Client == nil {
		r.Client = mgr.GetClient()
	}
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	if r.Recorder == nil {
		r.Recorder = mgr.GetEventRecorder("bollard-operator")
	}
	if r.Brokers == nil {
		r.Brokers = HTTPBrokerStatusReader{}
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &v1alpha1.MQTTBroker{}, secretIndex, indexSecretNames); err != nil {
		return fmt.Errorf("controllers: indexing %s: %w", secretIndex, err)
	}
	byInstance := handler.EnqueueRequestsFromMapFunc(brokerForLabeled)
	return ctrl.NewControllerManagedBy(mgr).
		Named("mqttbroker").
		For(&v1alpha1.MQTTBroker{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Owns(&corev1.ServiceAccount{}).
		Owns(&corev1.ConfigMap{}).
		Owns(&corev1.Service{}).
		Owns(&appsv1.StatefulSet{}).
		Owns(&policyv1.PodDisruptionBudget{}).
		Watches(&corev1.Pod{}, byInstance).
		Watches(&corev1.PersistentVolumeClaim{}, byInstance).
		WatchesMetadata(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.brokersForSecret)).
		Complete(r)
}

// brokerForLabeled maps a pod or claim to its broker by the instance label
// the StatefulSet gives it.
func brokerForLabeled(_ context.Context, o client.Object) []reconcile.Request {
	l := o.GetLabels()
	if l[resources.LabelManagedBy] != resources.ManagedBy || l[resources.LabelInstance] == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: o.GetNamespace(), Name: l[resources.LabelInstance]}}}
}
