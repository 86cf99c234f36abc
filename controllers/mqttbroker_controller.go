package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/controllers/members"
	"github.com/bollard-io/bollard/controllers/resources"
	"github.com/bollard-io/bollard/controllers/status"
)

// MQTTBrokerReconciler makes an MQTTBroker's children match its spec.
type MQTTBrokerReconciler struct {
	// Client reads through the manager's cache and writes to the apiserver.
	Client client.Client
	// APIReader reads referenced Secrets directly, so that the operator
	// caches only their metadata.
	APIReader client.Reader
	// Recorder records Events on the MQTTBroker.
	Recorder events.EventRecorder
	// Brokers asks running broker pods which configuration they applied.
	Brokers BrokerStatusReader
	// Cluster drives the members of a cluster (spec.replicas 3 or 5)
	// through their admin API; nil means HTTPClusterAdmin.
	Cluster ClusterAdmin
	// ClusterLimits bound what counts as a caught-up member and how long
	// a rolling upgrade waits for a restarted member; the zero value means
	// members.DefaultLimits.
	ClusterLimits members.Limits
	// DefaultImage is the broker image used when spec.image is empty.
	DefaultImage string
	// ConfigBackoff paces re-asking the brokers until they report the
	// current configuration generation (see nextBrokerQuery).
	// SetupWithManager sets 250ms doubling up to 2s when it is nil: a hot
	// change is seen applied within about 2 s of the broker applying it
	// (the cap was 30 s, and ConfigApplied turned True ~26 s late).
	ConfigBackoff workqueue.TypedRateLimiter[reconcile.Request]
	// StatusRefresh is how often the operator asks the brokers of a Ready
	// MQTTBroker for their status when nothing else happens, refreshing
	// status.sessions, status.queuedMessages and status.stats (the
	// Sessions, Queued and Store printer columns): nothing in the cluster
	// changes when clients come and go. 0 means DefaultStatusRefresh.
	StatusRefresh time.Duration
	// StatusMinInterval bounds how often one broker pod is asked for its
	// status, however many reconciles events bring, except while the
	// operator waits for it to apply a configuration generation (see
	// statusCache). 0 means DefaultStatusMinInterval.
	StatusMinInterval time.Duration
	// SecretRecheck is how soon a reconcile that found a referenced Secret
	// missing or unusable runs again (the operator does not watch Secrets).
	// 0 means DefaultSecretRecheck.
	SecretRecheck time.Duration
	// NetworkPolicy holds the operator-wide NetworkPolicy settings.
	NetworkPolicy resources.NetworkPolicyDefaults
	// Now returns the current time; nil means time.Now.
	Now func() time.Time

	// ownedWatches watch the objects of each optional kind the operator
	// owns (optionalKinds), started once their CRD is installed; nil
	// before SetupWithManager.
	ownedWatches map[schema.GroupVersionKind]*lazyWatch
	// statuses are the brokers' last answers (queryBrokers).
	statuses statusCache
	// handovers are the readiness handovers the reconciles last decided.
	handovers handoverMemory
}

// pass is the state of one reconcile: the broker, what was rendered, and
// what was observed, which becomes the status.
type pass struct {
	broker *v1alpha1.MQTTBroker
	cfg    *config.Config // nil when the spec renders an invalid config
	params resources.Params
	obs    status.Observed
	errs   []error
	// adminToken is the broker's admin API token, for the status queries.
	adminToken string
	// recheckSecrets: a referenced Secret is missing or unusable, so the
	// reconcile must run again soon (no watch will bring it back).
	recheckSecrets bool
	// sources digests the broker's reloadable volumes (refreshPods).
	sources sources
	// cluster is what readCluster saw of a cluster's members; nil for a
	// single node.
	cluster *clusterPass
	// clusterRequeue: a cluster is changing (members.Decide did not say
	// Done), so the reconcile runs again soon.
	clusterRequeue bool
	// handoverRequeue: a readiness handover waits for the client
	// Service's endpoints, so the reconcile runs again sooner still.
	handoverRequeue bool
	// handoverStarted: this reconcile starts a readiness handover.
	handoverStarted bool
}

func (p *pass) problem(reason, format string, args ...any) {
	p.obs.Problems = append(p.obs.Problems, status.Problem{Reason: reason, Message: fmt.Sprintf(format, args...)})
}

// step is one named stage of a reconcile. Steps run in order; a failing
// step is recorded (Degraded, an Event) and the next steps still run, so
// that one refused object does not hold back the others.
type step struct {
	name string
	run  func(ctx context.Context, p *pass) error
}

func (r *MQTTBrokerReconciler) steps() []step {
	return []step{
		{"render-config", r.renderConfig},
		// Before the Secrets: without cert-manager, its absence is the
		// first problem (Degraded's reason), the missing Secret its
		// consequence.
		{"certificate", r.applyOptional(&certificates)},
		{"secrets", r.checkSecrets},
		{"admin-token", r.ensureAdminToken},
		{"cluster-secret", r.ensureClusterSecret},
		{"cluster", r.readCluster},
		{"serviceaccount", r.applyServiceAccount},
		{"configmap", r.applyConfigMap},
		{"service", r.applyService},
		{"headless-service", r.applyHeadlessService},
		{"statefulset", r.applyStatefulSet},
		{"members", r.actOnCluster},
		{"volumes", r.expandVolumes},
		{"poddisruptionbudget", r.applyPodDisruptionBudget},
		{"networkpolicy", r.applyNetworkPolicy},
		{"metrics-service", r.applyMetricsService},
		{"servicemonitor", r.applyOptional(&serviceMonitors)},
		{"prometheusrule", r.applyOptional(&prometheusRules)},
		{"brokers", r.queryBrokers},
	}
}

// +kubebuilder:rbac:groups=mqtt.bollard.io,resources=mqttbrokers,verbs=get;list;watch
// +kubebuilder:rbac:groups=mqtt.bollard.io,resources=mqttbrokers/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=mqtt.bollard.io,resources=mqttbrokers/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=serviceaccounts;configmaps;services,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=apps,resources=statefulsets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=persistentvolumeclaims,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;patch;delete
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;create
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile implements reconcile.Reconciler.
func (r *MQTTBrokerReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	b := &v1alpha1.MQTTBroker{}
	if err := r.Client.Get(ctx, req.NamespacedName, b); err != nil {
		r.backoff().Forget(req)
		if apierrors.IsNotFound(err) {
			r.statuses.forget(req.NamespacedName)
			r.handovers.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !b.DeletionTimestamp.IsZero() {
		// Children go with it through their owner references; the claims
		// stay unless persistence.reclaimPolicy is Delete.
		return ctrl.Result{}, nil
	}
	orig := b.DeepCopy()
	p := &pass{broker: b, params: resources.Params{DefaultImage: r.DefaultImage, NetworkPolicy: r.NetworkPolicy}}
	p.obs.Generation = b.Generation
	p.obs.Replicas = ptrOr(b.Spec.Replicas, 1)
	if b.Annotations[v1alpha1.PausedAnnotation] == "true" {
		return ctrl.Result{}, r.pause(ctx, p, orig)
	}
	for _, s := range r.steps() {
		if err := s.run(ctx, p); err != nil {
			log.FromContext(ctx).Error(err, "reconcile step failed", "step", s.name)
			p.problem(v1alpha1.ReasonApplyFailed, "%s: %v", s.name, err)
			p.errs = append(p.errs, fmt.Errorf("%s: %w", s.name, err))
		}
	}
	b.Status.ObservedGeneration = b.Generation
	b.Status.Conditions = status.Conditions(b.Status.Conditions, p.obs, metav1.NewTime(r.now()))
	r.announceRefusal(orig, b)
	if err := r.patchStatus(ctx, b, orig); err != nil {
		p.errs = append(p.errs, err)
	}
	if err := errors.Join(p.errs...); err != nil {
		return ctrl.Result{}, err
	}
	res := r.brokerRequeue(req, b)
	if p.recheckSecrets && (res.RequeueAfter == 0 || res.RequeueAfter > r.secretRecheck()) {
		res.RequeueAfter = r.secretRecheck()
	}
	if p.clusterRequeue && (res.RequeueAfter == 0 || res.RequeueAfter > clusterRequeue) {
		res.RequeueAfter = clusterRequeue
	}
	if p.handoverRequeue && (res.RequeueAfter == 0 || res.RequeueAfter > handoverRequeue) {
		res.RequeueAfter = handoverRequeue
	}
	return res, nil
}

// DefaultSecretRecheck is the default of MQTTBrokerReconciler.SecretRecheck.
const DefaultSecretRecheck = 10 * time.Second

func (r *MQTTBrokerReconciler) secretRecheck() time.Duration {
	if r.SecretRecheck > 0 {
		return r.SecretRecheck
	}
	return DefaultSecretRecheck
}

// announceRefusal records a Warning Event when ConfigApplied turns to
// ConfigRefused, or its message (which broker refused what) changes: once
// per refusal, not on every reconcile.
func (r *MQTTBrokerReconciler) announceRefusal(orig, b *v1alpha1.MQTTBroker) {
	now := meta.FindStatusCondition(b.Status.Conditions, v1alpha1.ConditionConfigApplied)
	if now == nil || now.Reason != v1alpha1.ReasonConfigRefused {
		return
	}
	before := meta.FindStatusCondition(orig.Status.Conditions, v1alpha1.ConditionConfigApplied)
	if before != nil && before.Reason == now.Reason && before.Message == now.Message {
		return
	}
	r.event(b, nil, true, EventConfigRefused, "Reload", "%s", now.Message)
}

// DefaultStatusRefresh is the default of MQTTBrokerReconciler.StatusRefresh.
const DefaultStatusRefresh = 30 * time.Second

// brokerQuery says when to ask the brokers again; it is the only timed
// requeue, because nothing in the cluster changes when a broker reloads
// its file or when its clients come and go.
type brokerQuery int

const (
	// queryOnEvent: only when a watch fires (no broker is ready).
	queryOnEvent brokerQuery = iota
	// queryWithBackoff: soon, backing off, while running brokers have not
	// applied the current configuration or cannot be asked.
	queryWithBackoff
	// queryPeriodically: every StatusRefresh while the broker is Ready, to
	// keep status.sessions and status.queuedMessages current.
	queryPeriodically
)

// nextBrokerQuery decides from the conditions just computed.
func nextBrokerQuery(conds []metav1.Condition) brokerQuery {
	c := meta.FindStatusCondition(conds, v1alpha1.ConditionConfigApplied)
	switch {
	case c != nil && c.Status != metav1.ConditionTrue && c.Reason != v1alpha1.ReasonNoRunningBrokers:
		return queryWithBackoff
	case meta.IsStatusConditionTrue(conds, v1alpha1.ConditionReady):
		return queryPeriodically
	}
	return queryOnEvent
}

// brokerRequeue turns nextBrokerQuery into a result.
func (r *MQTTBrokerReconciler) brokerRequeue(req ctrl.Request, b *v1alpha1.MQTTBroker) ctrl.Result {
	switch nextBrokerQuery(b.Status.Conditions) {
	case queryWithBackoff:
		return ctrl.Result{RequeueAfter: r.backoff().When(req)}
	case queryPeriodically:
		r.backoff().Forget(req)
		return ctrl.Result{RequeueAfter: r.statusRefresh()}
	}
	r.backoff().Forget(req)
	return ctrl.Result{}
}

func (r *MQTTBrokerReconciler) statusMinInterval() time.Duration {
	if r.StatusMinInterval > 0 {
		return r.StatusMinInterval
	}
	return DefaultStatusMinInterval
}

func (r *MQTTBrokerReconciler) statusRefresh() time.Duration {
	if r.StatusRefresh > 0 {
		return r.StatusRefresh
	}
	return DefaultStatusRefresh
}

// pause records that the broker is paused and changes nothing else.
func (r *MQTTBrokerReconciler) pause(ctx context.Context, p *pass, orig *v1alpha1.MQTTBroker) error {
	b := p.broker
	p.obs.Paused = true
	if c := meta.FindStatusCondition(b.Status.Conditions, v1alpha1.ConditionProgressing); c == nil || c.Reason != v1alpha1.ReasonPaused {
		r.event(b, nil, false, EventPaused, "Pause", "Reconciling paused by the annotation %s=true", v1alpha1.PausedAnnotation)
	}
	b.Status.Conditions = status.Conditions(b.Status.Conditions, p.obs, metav1.NewTime(r.now()))
	return r.patchStatus(ctx, b, orig)
}

func (r *MQTTBrokerReconciler) patchStatus(ctx context.Context, b, orig *v1alpha1.MQTTBroker) error {
	if equality.Semantic.DeepEqual(b.Status, orig.Status) {
		return nil
	}
	if err := r.Client.Status().Patch(ctx, b, client.MergeFrom(orig)); err != nil {
		return fmt.Errorf("patching status: %w", client.IgnoreNotFound(err))
	}
	return nil
}

// renderConfig renders the broker's configuration and checks what the spec
// adds to the pod; with either refused, nothing is rendered and the
// broker keeps running as it was.
func (r *MQTTBrokerReconciler) renderConfig(_ context.Context, p *pass) error {
	cfg, err := resources.BrokerConfig(p.broker)
	if err == nil {
		err = resources.ValidatePodSpec(p.broker)
	}
	if err != nil {
		// Not an API error: retrying will not help until the spec changes.
		p.problem(v1alpha1.ReasonInvalidConfig, "%v", err)
		p.obs.RenderError = err.Error()
		r.event(p.broker, nil, true, EventInvalidConfig, "Render", "%v", err)
		return nil
	}
	p.cfg = cfg
	b := p.broker
	b.Status.Endpoint = resources.Endpoint(b)
	return nil
}

func (r *MQTTBrokerReconciler) applyServiceAccount(ctx context.Context, p *pass) error {
	_, _, err := apply(ctx, r, p.broker, resources.ServiceAccount(p.broker), newServiceAccount, mergeServiceAccount)
	return err
}

// applyConfigMap writes the rendered configuration; with an invalid one,
// the previous file stays, and so does the running broker.
func (r *MQTTBrokerReconciler) applyConfigMap(ctx context.Context, p *pass) error {
	if p.cfg == nil {
		return nil
	}
	cm, err := resources.ConfigMap(p.broker, p.cfg)
	if err != nil {
		return err
	}
	_, _, err = apply(ctx, r, p.broker, cm, newConfigMap, mergeConfigMap)
	if err == nil {
		p.sources.configMap(cm)
	}
	return err
}

func (r *MQTTBrokerReconciler) applyService(ctx context.Context, p *pass) error {
	_, _, err := apply(ctx, r, p.broker, resources.Service(p.broker), newService, mergeService)
	return err
}

func (r *MQTTBrokerReconciler) applyHeadlessService(ctx context.Context, p *pass) error {
	_, _, err := apply(ctx, r, p.broker, resources.HeadlessService(p.broker), newService, mergeService)
	return err
}

// applyStatefulSet writes the StatefulSet and records a Restarted event
// when its pod template changes.
func (r *MQTTBrokerReconciler) applyStatefulSet(ctx context.Context, p *pass) error {
	b := p.broker
	if p.cfg == nil {
		// Keep the pods on their last good configuration; still observe.
		cur := &appsv1.StatefulSet{}
		err := r.Client.Get(ctx, client.ObjectKey{Namespace: b.Namespace, Name: resources.StatefulSetName(b)}, cur)
		if err == nil {
			p.obs.StatefulSet = cur
		}
		return client.IgnoreNotFound(err)
	}
	want := resources.StatefulSet(b, p.cfg, p.params)
	before := &appsv1.StatefulSet{}
	err := r.Client.Get(ctx, client.ObjectKeyFromObject(want), before)
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	if !before.DeletionTimestamp.IsZero() {
		// A single node's StatefulSet on its way out (scaling to a
		// cluster, adopt.go): the cluster's is created once it is gone.
		p.obs.StatefulSet = before
		p.clusterRequeue = true
		return nil
	}
	// The drift and the roll's cause are read from the object the update
	// merges into, not from before: the cache may bring the hand edit in
	// between the two reads, and the edit would be reverted unreported.
	var drifted []string
	cur, op, err := apply(ctx, r, b, want, newStatefulSet, func(cur, want *appsv1.StatefulSet) {
		before = cur.DeepCopy()
		drifted = statefulSetDrift(cur, want)
		mergeStatefulSet(cur, want)
	})
	if err != nil {
		return err
	}
	p.obs.StatefulSet = cur
	if op != controllerutil.OperationResultUpdated {
		drifted = nil
	}
	if len(drifted) > 0 {
		r.event(b, cur, false, EventDriftCorrected, "Update", "Reverted changes made outside the operator to StatefulSet %s: %s",
			cur.Name, summarizePaths(drifted))
	}
	if why := rollCause(before, cur, drifted); why != "" {
		r.event(b, cur, false, EventRestarted, "Restart", "Rolling the broker pods: %s", why)
	}
	return nil
}

// summarizePaths joins the first few drifted paths for an event message.
func summarizePaths(paths []string) string {
	const most = 5
	if len(paths) <= most {
		return strings.Join(paths, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(paths[:most], ", "), len(paths)-most)
}

// rollCause says why the pods roll from before to after, or "" if they do
// not (or before did not exist). drifted are the fields that were put back
// after someone changed them (statefulSetDrift).
func rollCause(before, after *appsv1.StatefulSet, drifted []string) string {
	if before.ResourceVersion == "" {
		return ""
	}
	oldHash, newHash := before.Annotations[resources.TemplateHashAnnotation], after.Annotations[resources.TemplateHashAnnotation]
	if oldHash == newHash {
		for _, p := range drifted {
			if strings.HasPrefix(p, "spec.template.") {
				return "the pod template was changed outside the operator and has been put back (" + p + ")"
			}
		}
		return ""
	}
	oldT, newT := before.Spec.Template.Annotations, after.Spec.Template.Annotations
	if roll := newT[resources.RollHashAnnotation]; roll != "" && roll == oldT[resources.RollHashAnnotation] {
		// A cluster's membership flags alone (the member list, the
		// bootstrap flag): no member restarts.
		return ""
	}
	switch {
	case oldT[v1alpha1.RestartedAtAnnotation] != newT[v1alpha1.RestartedAtAnnotation]:
		return fmt.Sprintf("restart requested (%s=%s)", v1alpha1.RestartedAtAnnotation, newT[v1alpha1.RestartedAtAnnotation])
	case oldT[resources.ConfigHashAnnotation] != newT[resources.ConfigHashAnnotation]:
		return "configuration that needs a restart changed (listeners, durability or data directory)"
	default:
		return "pod template changed (image, resources, scheduling or pod annotations)"
	}
}

// applyNetworkPolicy writes the NetworkPolicy, or deletes the one the
// operator made when the spec or the operator's flags disable it.
func (r *MQTTBrokerReconciler) applyNetworkPolicy(ctx context.Context, p *pass) error {
	b := p.broker
	if want := resources.NetworkPolicy(b, p.params.NetworkPolicy); want != nil {
		_, _, err := apply(ctx, r, b, want, newNetworkPolicy, mergeNetworkPolicy)
		return err
	}
	cur := &networkingv1.NetworkPolicy{}
	cur.SetName(resources.NetworkPolicyName(b))
	cur.SetNamespace(b.Namespace)
	return r.deleteOwned(ctx, b, cur, "NetworkPolicy", "NetworkPolicies are disabled (spec.networkPolicy.enabled or --network-policies)")
}

// applyPodDisruptionBudget writes the PDB, or deletes the one the operator
// made when the spec disables it.
func (r *MQTTBrokerReconciler) applyPodDisruptionBudget(ctx context.Context, p *pass) error {
	b := p.broker
	if want := resources.PodDisruptionBudget(b); want != nil {
		_, _, err := apply(ctx, r, b, want, newPodDisruptionBudget, mergePodDisruptionBudget)
		return err
	}
	cur := &policyv1.PodDisruptionBudget{}
	cur.SetName(resources.PodDisruptionBudgetName(b))
	cur.SetNamespace(b.Namespace)
	return r.deleteOwned(ctx, b, cur, "PodDisruptionBudget", "spec.podDisruptionBudget.enabled is false")
}

func (r *MQTTBrokerReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *MQTTBrokerReconciler) backoff() workqueue.TypedRateLimiter[reconcile.Request] {
	return r.ConfigBackoff
}

func ptrOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

func newServiceAccount() *corev1.ServiceAccount             { return &corev1.ServiceAccount{} }
func newConfigMap() *corev1.ConfigMap                       { return &corev1.ConfigMap{} }
func newService() *corev1.Service                           { return &corev1.Service{} }
func newStatefulSet() *appsv1.StatefulSet                   { return &appsv1.StatefulSet{} }
func newPodDisruptionBudget() *policyv1.PodDisruptionBudget { return &policyv1.PodDisruptionBudget{} }
func newNetworkPolicy() *networkingv1.NetworkPolicy         { return &networkingv1.NetworkPolicy{} }
