package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// PortsAnnotation, set by the agent on every Pod it runs, holds a JSON
// object mapping each container port (by name, or number when unnamed) to
// the local address it was remapped to, e.g.
// {"mqtt":"127.0.0.1:21883","admin":"127.0.0.1:28080"}.
const PortsAnnotation = "e2e.bollard.io/ports"

// Resolver maps a container to the local executable that stands in for its
// image and command[0]. The returned args replace nothing: the container's
// own command[1:] and args follow the executable.
type Resolver func(c *corev1.Container) (executable string, err error)

// Options configure an Agent.
type Options struct {
	// NodeName names the Node the agent registers (default "e2e-node").
	NodeName string
	// WorkDir holds pod directories (pods/<uid>), volumes and logs.
	WorkDir string
	// Resolve maps containers to local executables. Required.
	Resolve Resolver
	// Capacity of the Node; defaults are generous (16 CPUs, 64Gi, 110 pods).
	Capacity corev1.ResourceList
	// MaxProbePeriod caps the period of readiness and startup probes
	// (default 1 s), so tests do not wait out production probe timings.
	// Ignored with KubeletTiming.
	MaxProbePeriod time.Duration
	// KubeletTiming makes the agent wait as a kubelet does, so that tests
	// measure what users will see rather than the agent's shortcuts:
	//   - probes run every periodSeconds, and the first one a whole period
	//     after the container started (the kubelet's probe worker ticks
	//     from the pod's admission, before the container runs);
	//   - ConfigMap and Secret volumes are refreshed only when the Pod
	//     object changes (its labels, annotations or spec) or every
	//     SourceResync, not when the ConfigMap or Secret changes (the
	//     kubelet refreshes them when it syncs the pod, about once a
	//     minute with its defaults).
	KubeletTiming bool
	// SourceResync is the periodic volume refresh under KubeletTiming
	// (default 60 s, the kubelet's syncFrequency).
	SourceResync time.Duration
	// ShutdownGrace caps the grace period given to processes when the agent
	// itself stops (default 10 s).
	ShutdownGrace time.Duration
	// PortBase and PortLimit bound the local ports handed to containers
	// (default 20000-32000, below Linux's ephemeral range, so that a client
	// connection never holds a port a restarting broker needs).
	PortBase, PortLimit int
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// Env is added to every process's environment (before the container's).
	Env []string
	// MaxProxyConns bounds the connections open at once through each
	// Service port's proxy (default 4096); more are reset and counted.
	MaxProxyConns int
}

func (o *Options) defaults() error {
	if o.Resolve == nil {
		return errors.New("nodeagent: Options.Resolve is required")
	}
	if o.WorkDir == "" {
		return errors.New("nodeagent: Options.WorkDir is required")
	}
	if o.NodeName == "" {
		o.NodeName = "e2e-node"
	}
	if o.Capacity == nil {
		o.Capacity = corev1.ResourceList{
			corev1.ResourceCPU:              resource.MustParse("16"),
			corev1.ResourceMemory:           resource.MustParse("64Gi"),
			corev1.ResourcePods:             resource.MustParse("110"),
			corev1.ResourceEphemeralStorage: resource.MustParse("100Gi"),
		}
	}
	if o.MaxProbePeriod <= 0 {
		o.MaxProbePeriod = time.Second
	}
	if o.SourceResync <= 0 {
		o.SourceResync = time.Minute
	}
	if o.ShutdownGrace <= 0 {
		o.ShutdownGrace = 10 * time.Second
	}
	if o.PortBase == 0 {
		o.PortBase, o.PortLimit = 20000, 32000
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}

// Agent is a running node agent. Create it with New and start it with Run.
type Agent struct {
	// resyncs counts the periodic resyncs under KubeletTiming.
	resyncs atomic.Uint64

	opts  Options
	kube  kubernetes.Interface
	log   *slog.Logger
	queue workqueue.TypedRateLimitingInterface[string]

	pods       corelisters.PodLister
	services   corelisters.ServiceLister
	slices     discoverylisters.EndpointSliceLister
	pvcs       corelisters.PersistentVolumeClaimLister
	pvs        corelisters.PersistentVolumeLister
	configMaps corelisters.ConfigMapLister
	secrets    corelisters.SecretLister
	synced     []cache.InformerSynced

	ports *portAllocator
	ips   *ipAllocator
	// svcQueue holds the Services whose proxies need a sync; apart from
	// the pod queue, so that a slow pod sync never delays a Service's
	// endpoints.
	svcQueue workqueue.TypedRateLimitingInterface[string]

	mu       sync.Mutex
	runtimes map[string]*podRuntime   // by namespace/name
	proxies  map[string]*serviceProxy // by proxyKey
	ready    chan struct{}
}

// New returns an agent that acts on the cluster through kube.
func New(kube kubernetes.Interface, o Options) (*Agent, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	for _, d := range []string{"pods", "volumes"} {
		if err := os.MkdirAll(filepath.Join(o.WorkDir, d), 0o755); err != nil {
			return nil, fmt.Errorf("nodeagent: %w", err)
		}
	}
	return &Agent{
		opts: o, kube: kube, log: o.Logger.With("component", "nodeagent", "node", o.NodeName),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](50*time.Millisecond, 5*time.Second),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "nodeagent"}),
		svcQueue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](50*time.Millisecond, 5*time.Second),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "nodeagent-services"}),
		ports:    newPortAllocator(o.PortBase, o.PortLimit),
		ips:      newIPAllocator(),
		runtimes: map[string]*podRuntime{},
		proxies:  map[string]*serviceProxy{},
		ready:    make(chan struct{}),
	}, nil
}

// NodeName is the name of the agent's Node.
func (a *Agent) NodeName() string { return a.opts.NodeName }

// Ready is closed once the Node is registered and the informers synced.
func (a *Agent) Ready() <-chan struct{} { return a.ready }

// Run registers the Node and runs pods until ctx is done; then it stops
// every process (SIGTERM, at most ShutdownGrace, SIGKILL) and returns.
func (a *Agent) Run(ctx context.Context) error {
	if err := a.registerNode(ctx); err != nil {
		return err
	}
	stop := a.startInformers(ctx)
	if !cache.WaitForCacheSync(ctx.Done(), a.synced...) {
		stop()
		return fmt.Errorf("nodeagent: informers did not sync: %w", ctx.Err())
	}
	close(a.ready)
	var wg sync.WaitGroup
	wg.Add(4)
	go func() { defer wg.Done(); a.heartbeat(ctx) }()
	go func() { defer wg.Done(); a.worker(ctx) }()
	go func() { defer wg.Done(); a.serviceWorker(ctx) }()
	go func() { defer wg.Done(); a.resync(ctx) }()
	<-ctx.Done()
	a.queue.ShutDown()
	a.svcQueue.ShutDown()
	wg.Wait()
	a.closeProxies()
	a.stopAll()
	stop()
	return nil
}

// startInformers watches the pods bound to this node, claims, volumes,
// ConfigMaps, Secrets, Services and EndpointSlices. It returns a function
// that stops them.
func (a *Agent) startInformers(ctx context.Context) func() {
	ictx, cancel := context.WithCancel(ctx)
	all := informers.NewSharedInformerFactory(a.kube, 0)
	mine := informers.NewSharedInformerFactoryWithOptions(a.kube, 0, informers.WithTweakListOptions(
		func(lo *metav1.ListOptions) {
			lo.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", a.opts.NodeName).String()
		}))
	podInf := mine.Core().V1().Pods()
	pvcInf := all.Core().V1().PersistentVolumeClaims()
	pvInf := all.Core().V1().PersistentVolumes()
	cmInf := all.Core().V1().ConfigMaps()
	secInf := all.Core().V1().Secrets()
	svcInf := all.Core().V1().Services()
	sliceInf := all.Discovery().V1().EndpointSlices()
	a.pods, a.pvcs, a.pvs = podInf.Lister(), pvcInf.Lister(), pvInf.Lister()
	a.configMaps, a.secrets = cmInf.Lister(), secInf.Lister()
	a.services, a.slices = svcInf.Lister(), sliceInf.Lister()
	a.handle(podInf.Informer(), a.onPod)
	a.handle(pvcInf.Informer(), a.onClaim)
	a.handle(pvInf.Informer(), a.onVolume)
	a.handle(cmInf.Informer(), a.onSource)
	a.handle(secInf.Informer(), a.onSource)
	a.handle(svcInf.Informer(), a.onService)
	a.handle(sliceInf.Informer(), a.onEndpointSlice)
	all.Start(ictx.Done())
	mine.Start(ictx.Done())
	return func() {
		cancel()
		all.Shutdown()
		mine.Shutdown()
	}
}

func (a *Agent) handle(inf cache.SharedIndexInformer, fn func(obj any)) {
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    fn,
		UpdateFunc: func(_, obj any) { fn(obj) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			fn(obj)
		},
	}); err != nil {
		// Only fails on a stopped informer, which has not started yet here.
		panic(fmt.Sprintf("nodeagent: adding event handler: %v", err))
	}
	a.synced = append(a.synced, inf.HasSynced)
}

func (a *Agent) onPod(obj any) {
	if p, ok := obj.(*corev1.Pod); ok {
		a.queue.Add(podKey(p.Namespace, p.Name))
	}
}

// onSource re-syncs the pods that mount a changed ConfigMap or Secret, so
// their files follow the object. Under KubeletTiming it does nothing: the
// files follow at the pod's next sync (see Options.KubeletTiming).
func (a *Agent) onSource(obj any) {
	m, ok := obj.(metav1.Object)
	if !ok || a.opts.KubeletTiming {
		return
	}
	for _, key := range a.podsMounting(m.GetNamespace(), m.GetName()) {
		a.queue.Add(key)
	}
}

// onVolume re-syncs pods when a volume changes (a claim got bound).
func (a *Agent) onVolume(any) { a.enqueueAll() }

// resync syncs every pod each SourceResync under KubeletTiming, as the
// kubelet's periodic sync does (refreshing their ConfigMap and Secret
// volumes).
func (a *Agent) resync(ctx context.Context) {
	if !a.opts.KubeletTiming {
		return
	}
	t := time.NewTicker(a.opts.SourceResync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.resyncs.Add(1)
			a.enqueueAll()
		}
	}
}

func (a *Agent) enqueueAll() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for key := range a.runtimes {
		a.queue.Add(key)
	}
}

func (a *Agent) worker(ctx context.Context) {
	for {
		key, shutdown := a.queue.Get()
		if shutdown {
			return
		}
		if err := a.syncPod(ctx, key); err != nil {
			if ctx.Err() == nil {
				a.log.Warn("sync failed, retrying", "pod", key, "err", err)
			}
			a.queue.AddRateLimited(key)
		} else {
			a.queue.Forget(key)
		}
		a.queue.Done(key)
	}
}

func podKey(ns, name string) string { return ns + "/" + name }
