package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/bollard-io/bollard/broker/adminapi"
	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/controllers"
	"github.com/bollard-io/bollard/controllers/resources"
	"github.com/bollard-io/bollard/test/e2e/nodeagent"
)

// DefaultBrokerImage is the image the in-process operator gives brokers
// that set none. The node agent runs any bollard image as the binary built
// from this checkout.
const DefaultBrokerImage = "ghcr.io/bollard-io/bollard:e2e"

// StartOperator runs the Bollard operator's manager in-process, as
// cmd/bollard-operator wires it, with one difference: the operator reads
// each broker's /v1/status at the pod's remapped admin port (the node
// agent's PortsAnnotation) instead of podIP:8080, for its status reads
// and its cluster calls alike. Its log goes to
// LogDir()/operator.log. It returns once the manager's caches synced.
// StopOperator stops it, and a later StartOperator starts a new one (as
// an operator Deployment's next pod would).
func (c *Cluster) StartOperator(ctx context.Context) error {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	if c.opStop != nil {
		return errors.New("cluster: the operator runs already")
	}
	mgr, err := ctrl.NewManager(c.Config, ctrl.Options{
		Scheme:                 c.Scheme,
		Cache:                  controllers.CacheOptions(nil),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		// One process may run the operator more than once (StopOperator,
		// then StartOperator): its controllers' names come again.
		Controller: ctrlconfig.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		return fmt.Errorf("cluster: operator manager: %w", err)
	}
	r := &controllers.MQTTBrokerReconciler{
		DefaultImage: DefaultBrokerImage, Brokers: PortMapStatusReader{}, Cluster: PortMapClusterAdmin{},
	}
	mctx, cancel := context.WithCancel(context.Background())
	if err := r.SetupWithManager(mctx, mgr); err != nil {
		cancel()
		return fmt.Errorf("cluster: operator setup: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mctx) }()
	c.opStop = func() {
		cancel()
		if err := <-done; err != nil {
			c.log.Warn("operator", "err", err)
		}
	}
	if !c.opOnStop {
		c.opOnStop = true
		c.OnStop(c.StopOperator)
	}
	syncCtx, cancelSync := context.WithTimeout(ctx, 60*time.Second)
	defer cancelSync()
	if !mgr.GetCache().WaitForCacheSync(syncCtx) {
		return fmt.Errorf("cluster: operator caches did not sync")
	}
	return nil
}

// StopOperator stops the operator started by StartOperator and returns
// once its manager ended; it does nothing when none runs.
func (c *Cluster) StopOperator() {
	c.opMu.Lock()
	stop := c.opStop
	c.opStop = nil
	c.opMu.Unlock()
	if stop != nil {
		stop()
	}
}

// setControllerRuntimeLogger sends controller-runtime's log (the
// operator's, and envtest's) to LogDir()/operator.log. The logger is
// process-wide; the file stays open for the life of the process.
func (c *Cluster) setControllerRuntimeLogger() error {
	logf, err := os.OpenFile(filepath.Join(c.LogDir(), "operator.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	ctrl.SetLogger(logr.FromSlogHandler(slog.NewJSONHandler(logf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	return nil
}

// PortMapStatusReader is the operator's BrokerStatusReader for the e2e
// cluster: it reads GET /v1/status from the local address the node agent
// gave the pod's admin port.
type PortMapStatusReader struct{}

// BrokerStatus implements controllers.BrokerStatusReader.
func (PortMapStatusReader) BrokerStatus(ctx context.Context, pod *corev1.Pod, token string) (controllers.BrokerStatus, error) {
	var st controllers.BrokerStatus
	ports, err := nodeagent.PortMap(pod)
	if err != nil {
		return st, err
	}
	addr, ok := ports[resources.PortAdmin]
	if !ok {
		return st, fmt.Errorf("cluster: pod %s has no %q port", pod.Name, resources.PortAdmin)
	}
	url := "http://" + addr + "/v1/status"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return st, fmt.Errorf("cluster: %w", err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Do(req)
	if err != nil {
		return st, fmt.Errorf("cluster: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return st, fmt.Errorf("cluster: reading %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("cluster: GET %s: %s", url, resp.Status)
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return st, fmt.Errorf("cluster: decoding %s: %w", url, err)
	}
	return st, nil
}

// PortMapClusterAdmin is the operator's ClusterAdmin for the e2e cluster:
// the production HTTPClusterAdmin, aimed at the local address the node
// agent gave each pod's admin port (every pod listens on 127.0.0.1; the IP
// in its status is a stand-in, see nodeagent.PodIPRange).
type PortMapClusterAdmin struct{}

// admin returns the HTTPClusterAdmin for pod and the pod as it must see
// it: at 127.0.0.1.
func (PortMapClusterAdmin) admin(pod *corev1.Pod) (controllers.HTTPClusterAdmin, *corev1.Pod, error) {
	ports, err := nodeagent.PortMap(pod)
	if err != nil {
		return controllers.HTTPClusterAdmin{}, nil, err
	}
	addr, ok := ports[resources.PortAdmin]
	if !ok {
		return controllers.HTTPClusterAdmin{}, nil, fmt.Errorf("cluster: pod %s has no %q port", pod.Name, resources.PortAdmin)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return controllers.HTTPClusterAdmin{}, nil, fmt.Errorf("cluster: pod %s admin address %q: %w", pod.Name, addr, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return controllers.HTTPClusterAdmin{}, nil, fmt.Errorf("cluster: pod %s admin address %q: %w", pod.Name, addr, err)
	}
	local := pod.DeepCopy()
	local.Status.PodIP = host
	return controllers.HTTPClusterAdmin{Port: n}, local, nil
}

// ClusterStatus implements controllers.ClusterAdmin.
func (p PortMapClusterAdmin) ClusterStatus(ctx context.Context, pod *corev1.Pod, token string) (adminapi.ClusterStatus, error) {
	h, local, err := p.admin(pod)
	if err != nil {
		return adminapi.ClusterStatus{}, err
	}
	return h.ClusterStatus(ctx, local, token)
}

// AddMember implements controllers.ClusterAdmin.
func (p PortMapClusterAdmin) AddMember(ctx context.Context, leader *corev1.Pod, token string, m config.ClusterMember) error {
	h, local, err := p.admin(leader)
	if err != nil {
		return err
	}
	return h.AddMember(ctx, local, token, m)
}

// RemoveMember implements controllers.ClusterAdmin.
func (p PortMapClusterAdmin) RemoveMember(ctx context.Context, leader *corev1.Pod, token, id string) error {
	h, local, err := p.admin(leader)
	if err != nil {
		return err
	}
	return h.RemoveMember(ctx, local, token, id)
}

// TransferLeadership implements controllers.ClusterAdmin.
func (p PortMapClusterAdmin) TransferLeadership(ctx context.Context, leader *corev1.Pod, token string) error {
	h, local, err := p.admin(leader)
	if err != nil {
		return err
	}
	return h.TransferLeadership(ctx, local, token)
}

// TransferLeadershipTo implements controllers.ClusterAdmin.
func (p PortMapClusterAdmin) TransferLeadershipTo(ctx context.Context, leader *corev1.Pod, token, id string) error {
	h, local, err := p.admin(leader)
	if err != nil {
		return err
	}
	return h.TransferLeadershipTo(ctx, local, token, id)
}

// PrepareHandover implements controllers.ClusterAdmin.
func (p PortMapClusterAdmin) PrepareHandover(ctx context.Context, pod *corev1.Pod, token, role string, ttl time.Duration) error {
	h, local, err := p.admin(pod)
	if err != nil {
		return err
	}
	return h.PrepareHandover(ctx, local, token, role, ttl)
}
