package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/test/e2e/nodeagent"
	"github.com/bollard-io/bollard/test/testenv"
)

// Options configure Start.
type Options struct {
	// WorkDir holds logs, the kubeconfig, pod directories and volumes.
	// Default: a new temporary directory, removed by Stop unless KeepWorkDir.
	WorkDir     string
	KeepWorkDir bool
	// Agent configures the node agent; WorkDir is set by Start.
	Agent nodeagent.Options
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// Cluster is a running e2e cluster.
type Cluster struct {
	// Config is a system:masters client configuration.
	Config *rest.Config
	// Kube and Client talk to the apiserver; Client's scheme knows MQTTBroker.
	Kube   kubernetes.Interface
	Client client.Client
	Scheme *runtime.Scheme
	// Kubeconfig is the path of a kubeconfig file for kubectl.
	Kubeconfig string
	// WorkDir is the cluster's directory; logs are under WorkDir/logs.
	WorkDir string
	// Agent is the node agent running pods.
	Agent *nodeagent.Agent

	opts Options
	log  *slog.Logger

	opMu     sync.Mutex
	opStop   func() // stops the running operator; nil when none runs
	opOnStop bool   // Stop stops the operator
	env      *envtest.Environment
	procs    []*process
	stops    []func()
	tempDir  bool
}

// Start brings the cluster up and returns once the node is Ready. It fails
// (never skips) when the control-plane binaries are missing.
func Start(ctx context.Context, o Options) (c *Cluster, err error) {
	assets, err := testenv.AssetsDir()
	if err != nil {
		return nil, err
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		return nil, err
	}
	c = &Cluster{opts: o, log: o.Logger, WorkDir: o.WorkDir}
	if c.log == nil {
		c.log = slog.Default()
	}
	if err := c.makeWorkDir(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.Stop())
		}
	}()
	if err := c.setControllerRuntimeLogger(); err != nil {
		return nil, err
	}
	if err := c.startControlPlane(assets, root); err != nil {
		return nil, err
	}
	if err := c.startComponents(ctx, assets); err != nil {
		return nil, err
	}
	if err := c.startAgent(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Cluster) makeWorkDir() error {
	if c.WorkDir == "" {
		d, err := os.MkdirTemp("", "bollard-e2e-")
		if err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
		c.WorkDir, c.tempDir = d, true
	}
	if err := os.MkdirAll(filepath.Join(c.WorkDir, "logs"), 0o755); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	return nil
}

// startControlPlane starts etcd and kube-apiserver with the CRDs installed,
// adds a system:masters user and writes its kubeconfig.
func (c *Cluster) startControlPlane(assets, root string) error {
	c.env = &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	if _, err := c.env.Start(); err != nil {
		c.env = nil
		return fmt.Errorf("cluster: starting kube-apiserver and etcd from %s: %w", assets, err)
	}
	user, err := c.env.ControlPlane.AddUser(envtest.User{Name: "bollard-e2e-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("cluster: adding the admin user: %w", err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	c.Kubeconfig = filepath.Join(c.WorkDir, "kubeconfig")
	if err := os.WriteFile(c.Kubeconfig, kubeconfig, 0o600); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	c.Config = rest.CopyConfig(user.Config())
	c.Config.QPS, c.Config.Burst = 100, 200
	return c.makeClients()
}

func (c *Cluster) makeClients() error {
	c.Scheme = runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(c.Scheme))
	utilruntime.Must(v1alpha1.AddToScheme(c.Scheme))
	var err error
	if c.Kube, err = kubernetes.NewForConfig(c.Config); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if c.Client, err = client.New(c.Config, client.Options{Scheme: c.Scheme}); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	return nil
}

// startAgent runs the node agent and waits until its Node is Ready.
func (c *Cluster) startAgent(ctx context.Context) error {
	o := c.opts.Agent
	o.WorkDir = filepath.Join(c.WorkDir, "node")
	if o.Logger == nil {
		o.Logger = c.log
	}
	a, err := nodeagent.New(c.Kube, o)
	if err != nil {
		return err
	}
	actx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(actx) }()
	c.stops = append(c.stops, func() {
		cancel()
		if err := <-done; err != nil {
			c.log.Warn("node agent", "err", err)
		}
	})
	c.Agent = a
	select {
	case <-a.Ready():
	case err := <-done:
		return fmt.Errorf("cluster: node agent stopped: %w", err)
	case <-ctx.Done():
		return fmt.Errorf("cluster: waiting for the node agent: %w", ctx.Err())
	}
	return c.waitNodeReady(ctx, a.NodeName())
}

func (c *Cluster) waitNodeReady(ctx context.Context, name string) error {
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true,
		func(ctx context.Context) (bool, error) {
			n, err := c.Kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return false, nil
			}
			if err != nil {
				return false, err
			}
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
					return true, nil
				}
			}
			return false, nil
		})
	if err != nil {
		return fmt.Errorf("cluster: node %s not Ready: %w", name, err)
	}
	return nil
}

// Stop stops everything Start started, in reverse order, and removes a
// temporary work directory. It is safe to call more than once.
func (c *Cluster) Stop() error {
	var errs []error
	for i := len(c.stops) - 1; i >= 0; i-- {
		c.stops[i]()
	}
	c.stops = nil
	for i := len(c.procs) - 1; i >= 0; i-- {
		if err := c.procs[i].stop(5 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	c.procs = nil
	if c.env != nil {
		if err := c.env.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("cluster: stopping kube-apiserver and etcd: %w", err))
		}
		c.env = nil
	}
	if c.tempDir && !c.opts.KeepWorkDir {
		if err := os.RemoveAll(c.WorkDir); err != nil {
			errs = append(errs, fmt.Errorf("cluster: %w", err))
		}
		c.tempDir = false
	}
	return errors.Join(errs...)
}

// OnStop registers fn to run first when the cluster stops (last registered
// runs first), e.g. to stop an operator before the control plane.
func (c *Cluster) OnStop(fn func()) { c.stops = append(c.stops, fn) }
