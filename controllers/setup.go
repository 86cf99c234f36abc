package controllers

import (
	"context"
	"fmt"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/controllers/resources"
)

// CacheOptions restrict the manager's cache to what the operator needs:
// child objects and broker pods are cached only when they carry the
// operator's managed-by label, and (when namespaces is not empty) only in
// those namespaces. Secrets are neither cached nor watched: the reconciler
// reads the few it needs with direct GETs (see checkSecrets), so its RBAC
// needs no list or watch on Secrets. Of the CustomResourceDefinitions only
// metadata is cached: the arrival of the optional CRDs the operator uses
// (optionalKinds: the Prometheus Operator's ServiceMonitor and
// PrometheusRule, cert-manager's Certificate) is what matters. (A field
// selector could keep only those, but only one name per selector.)
func CacheOptions(namespaces []string) cache.Options {
	managed := labels.SelectorFromSet(labels.Set{resources.LabelManagedBy: resources.ManagedBy})
	o := cache.Options{ByObject: map[client.Object]cache.ByObject{}}
	for _, obj := range []client.Object{
		&corev1.ServiceAccount{}, &corev1.ConfigMap{}, &corev1.Service{}, &appsv1.StatefulSet{},
		&policyv1.PodDisruptionBudget{}, &corev1.PersistentVolumeClaim{}, &corev1.Pod{},
		&networkingv1.NetworkPolicy{},
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
// claims (by label), and the CRDs of the optional kinds (so that brokers
// asking for a ServiceMonitor, a PrometheusRule or a Certificate get it
// once its CRD is installed). There is no periodic resync; the only timed
// requeue asks the brokers for their status (see
// MQTTBrokerReconciler.StatusRefresh).
func (r *MQTTBrokerReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if r.ConfigBackoff == nil {
		r.ConfigBackoff = workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](250*time.Millisecond, 2*time.Second)
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
	if r.Cluster == nil {
		r.Cluster = HTTPClusterAdmin{}
	}
	byInstance := handler.EnqueueRequestsFromMapFunc(brokerForLabeled)
	c, err := ctrl.NewControllerManagedBy(mgr).
		Named("mqttbroker").
		For(&v1alpha1.MQTTBroker{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Owns(&corev1.ServiceAccount{}).
		Owns(&corev1.ConfigMap{}).
		Owns(&corev1.Service{}).
		Owns(&appsv1.StatefulSet{}).
		Owns(&policyv1.PodDisruptionBudget{}).
		Owns(&networkingv1.NetworkPolicy{}).
		Watches(&corev1.Pod{}, byInstance).
		Watches(&corev1.PersistentVolumeClaim{}, byInstance).
		Watches(crdMetadata(), handler.EnqueueRequestsFromMapFunc(r.brokersWantingCRD),
			builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
				return optionalKindOf(o.GetName()) != nil
			}))).
		Build(r)
	if err != nil {
		return err
	}
	// The objects of an optional kind can be watched only once its CRD is
	// installed, which may be after the operator starts: applyOptional
	// starts the watch.
	r.ownedWatches = make(map[schema.GroupVersionKind]*lazyWatch, len(optionalKinds))
	for _, k := range optionalKinds {
		r.ownedWatches[k.gvk] = ownedWatch(mgr, c, k.gvk)
	}
	return nil
}

// lazyWatch starts a watch once, on first need.
type lazyWatch struct {
	mu      sync.Mutex
	started bool
	start   func() error
}

// ensure starts the watch unless it already runs. A nil lazyWatch (a
// reconciler not set up with a manager, in unit tests) does nothing.
func (w *lazyWatch) ensure() error {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started {
		return nil
	}
	if err := w.start(); err != nil {
		return fmt.Errorf("controllers: starting a watch: %w", err)
	}
	w.started = true
	return nil
}

// ownedWatch is a lazy watch on the objects of kind gvk (as metadata)
// that a broker controls, enqueueing that broker.
func ownedWatch(mgr ctrl.Manager, c controller.Controller, gvk schema.GroupVersionKind) *lazyWatch {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(gvk)
	return &lazyWatch{start: func() error {
		return c.Watch(source.Kind[client.Object](mgr.GetCache(), m,
			handler.EnqueueRequestForOwner(mgr.GetScheme(), mgr.GetRESTMapper(), &v1alpha1.MQTTBroker{}, handler.OnlyControllerOwner())))
	}}
}

// crdMetadata is the metadata of a CustomResourceDefinition: the operator
// watches the optional CRDs come and go without importing the
// apiextensions types.
func crdMetadata() *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"})
	return m
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
