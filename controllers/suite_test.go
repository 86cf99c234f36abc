//go:build envtest

package controllers_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/yaml"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/controllers"
	"github.com/bollard-io/bollard/controllers/resources"
	"github.com/bollard-io/bollard/test/poll"
)

// The suite runs the reconciler in a manager against a real kube-apiserver
// and etcd (envtest). There is no kube-controller-manager: StatefulSets make
// no pods and nothing garbage-collects, so tests play the part of the
// StatefulSet controller where they need pods, and assert owner references
// rather than deletion.

const testImage = "ghcr.io/bollard-io/bollard:v0.0.0-test"

// statusRefresh is the suite's period of broker queries while Ready, short
// so that TestStatusRefreshesWhileReady is quick; statusMinInterval bounds
// how often one pod is asked (TestStatusQueriesAreBounded).
const (
	statusRefresh     = 500 * time.Millisecond
	statusMinInterval = 250 * time.Millisecond
)

var (
	k8s     client.Client // direct, uncached
	restCfg *rest.Config
	brokers = &fakeBrokers{status: map[string]controllers.BrokerStatus{}, clusters: map[string]*fakeCluster{}}
)

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	assets, err := assetsDir()
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: controllers envtest suite:", err)
		return 1
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
	}
	restCfg, err = env.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: starting envtest:", err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping envtest:", err)
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopped, err := startManager(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	code := m.Run()
	cancel()
	<-stopped
	return code
}

// assetsDir finds kube-apiserver and etcd: $KUBEBUILDER_ASSETS, or the
// cache that hack/testbin.sh fills. Missing binaries fail the suite rather
// than skip it, so that CI cannot pass having run nothing.
func assetsDir() (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, nil
	}
	out, err := exec.Command("bash", filepath.Join("..", "hack", "testbin.sh"), "--print-only").Output()
	if err != nil {
		return "", errors.New("KUBEBUILDER_ASSETS is unset and hack/testbin.sh --print-only found no kube-apiserver/etcd: " +
			"build them with `bash hack/testbin.sh` (a few minutes, cached) and run " +
			"`KUBEBUILDER_ASSETS=$(bash hack/testbin.sh) go test -tags envtest ./controllers/...` (or `make test`)")
	}
	return strings.TrimSpace(string(out)), nil
}

// operatorNamespace stands for the namespace the operator runs in.
const operatorNamespace = "bollard-system"

// operatorUser is who the suite's manager acts as: the operator's
// ServiceAccount, bound to the ClusterRole of config/rbac/role.yaml (the
// one `make manifests` generates from the kubebuilder markers and the
// chart ships). Every test therefore also proves that RBAC allows what the
// operator and controller-runtime's caches do: a missing permission shows
// up as a forbidden error and a failing test.
const operatorUser = "system:serviceaccount:" + operatorNamespace + ":bollard-operator"

// grantOperatorRBAC creates the operator's ClusterRole from
// config/rbac/role.yaml and binds it to operatorUser, and returns a rest
// config that impersonates that user.
func grantOperatorRBAC(ctx context.Context) (*rest.Config, error) {
	data, err := os.ReadFile(filepath.Join("..", "config", "rbac", "role.yaml"))
	if err != nil {
		return nil, err
	}
	role := &rbacv1.ClusterRole{}
	if err := yaml.UnmarshalStrict(data, role); err != nil {
		return nil, fmt.Errorf("config/rbac/role.yaml: %w", err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: operatorUser}},
	}
	for _, o := range []client.Object{role, binding} {
		if err := k8s.Create(ctx, o); err != nil {
			return nil, fmt.Errorf("creating %T %s: %w", o, o.GetName(), err)
		}
	}
	cfg := rest.CopyConfig(restCfg)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: operatorUser}
	return cfg, nil
}

func startManager(ctx context.Context) (<-chan struct{}, error) {
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
	var err error
	k8s, err = client.New(restCfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	operatorCfg, err := grantOperatorRBAC(ctx)
	if err != nil {
		return nil, fmt.Errorf("operator RBAC: %w", err)
	}
	mgr, err := ctrl.NewManager(operatorCfg, ctrl.Options{
		Scheme:                 scheme,
		Cache:                  controllers.CacheOptions(nil),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		return nil, fmt.Errorf("creating manager: %w", err)
	}
	r := &controllers.MQTTBrokerReconciler{
		DefaultImage:      testImage,
		Brokers:           brokers,
		Cluster:           brokers,
		ClusterLimits:     clusterLimits,
		ConfigBackoff:     workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](50*time.Millisecond, time.Second),
		StatusRefresh:     statusRefresh,
		StatusMinInterval: statusMinInterval,
		SecretRecheck:     statusRefresh,
		NetworkPolicy:     resources.NetworkPolicyDefaults{OperatorNamespace: operatorNamespace},
	}
	if err := r.SetupWithManager(ctx, mgr); err != nil {
		return nil, err
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	}()
	return stopped, nil
}

// fakeBrokers stands in for the brokers' admin endpoints: tests set what
// each pod reports.
type fakeBrokers struct {
	mu     sync.Mutex
	status map[string]controllers.BrokerStatus // by namespace/pod
	calls  atomic.Int64
	perPod map[string]int    // calls by namespace/pod
	tokens map[string]string // last admin token presented, by namespace/pod
	// clusters are the replicated brokers' members, by namespace
	// (cluster_envtest_test.go).
	clusters map[string]*fakeCluster
}

func (f *fakeBrokers) BrokerStatus(_ context.Context, pod *corev1.Pod, token string) (controllers.BrokerStatus, error) {
	f.calls.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.perPod == nil {
		f.perPod = map[string]int{}
		f.tokens = map[string]string{}
	}
	f.perPod[pod.Namespace+"/"+pod.Name]++
	f.tokens[pod.Namespace+"/"+pod.Name] = token
	st, ok := f.status[pod.Namespace+"/"+pod.Name]
	if !ok {
		return st, errors.New("connection refused")
	}
	return st, nil
}

// token is the admin token last presented to one pod.
func (f *fakeBrokers) token(ns, pod string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tokens[ns+"/"+pod]
}

// podCalls counts the questions asked to one pod.
func (f *fakeBrokers) podCalls(ns, pod string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.perPod[ns+"/"+pod]
}

func (f *fakeBrokers) set(ns, pod string, st controllers.BrokerStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status[ns+"/"+pod] = st
}

// unset makes the pod's broker unreachable.
func (f *fakeBrokers) unset(ns, pod string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.status, ns+"/"+pod)
}

// --- helpers ---

const (
	waitFor  = 20 * time.Second
	pollStep = 50 * time.Millisecond
)

// eventually polls fn until it returns nil, failing the test with its last
// error at the deadline.
func eventually(t *testing.T, fn func() error) {
	t.Helper()
	if err := poll.Until(context.Background(), waitFor, pollStep, func(context.Context) error { return fn() }); err != nil {
		t.Fatalf("still failing after %s: %v", waitFor, err)
	}
}

// consistently checks that fn keeps returning nil for d.
func consistently(t *testing.T, d time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if err := fn(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(pollStep)
	}
}

var nsCounter atomic.Int64

// namespace creates a namespace for one test (envtest never deletes them:
// there is no namespace controller).
func namespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: fmt.Sprintf("t%d-%s", nsCounter.Add(1), strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))),
	}}
	if len(ns.Name) > 63 {
		ns.Name = strings.TrimRight(ns.Name[:63], "-")
	}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

func get(t *testing.T, obj client.Object, ns, name string) error {
	t.Helper()
	return k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, obj)
}

// update applies change to the latest version of obj, retrying on
// conflicts with the operator.
func update[T client.Object](t *testing.T, obj T, change func(T)) {
	t.Helper()
	eventually(t, func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		change(obj)
		return k8s.Update(context.Background(), obj)
	})
}
