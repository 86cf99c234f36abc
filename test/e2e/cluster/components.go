package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// startComponents starts kube-controller-manager and kube-scheduler
// against the apiserver, as k8s-testbed.md describes, and waits until the
// controller manager works (it creates the default ServiceAccount).
func (c *Cluster) startComponents(ctx context.Context, assets string) error {
	certDir := c.env.ControlPlane.APIServer.CertDir
	caFile := filepath.Join(c.WorkDir, "ca.crt")
	if err := os.WriteFile(caFile, c.Config.CAData, 0o644); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	flexDir := filepath.Join(c.WorkDir, "flexvolume")
	if err := os.MkdirAll(flexDir, 0o755); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	common := []string{
		"--kubeconfig=" + c.Kubeconfig,
		"--authentication-kubeconfig=" + c.Kubeconfig,
		"--authorization-kubeconfig=" + c.Kubeconfig,
		"--leader-elect=false", "--secure-port=0", "--bind-address=127.0.0.1",
	}
	kcm := append(append([]string{}, common...),
		"--service-account-private-key-file="+filepath.Join(certDir, "sa-signer.key"),
		"--root-ca-file="+caFile,
		"--flex-volume-plugin-dir="+flexDir,
		"--use-service-account-credentials=false",
	)
	for _, comp := range []struct {
		name string
		args []string
	}{{"kube-controller-manager", kcm}, {"kube-scheduler", common}} {
		p, err := startProcess(comp.name, filepath.Join(assets, comp.name),
			filepath.Join(c.WorkDir, "logs", comp.name+".log"), comp.args...)
		if err != nil {
			return err
		}
		c.procs = append(c.procs, p)
	}
	return c.waitControllerManager(ctx)
}

func (c *Cluster) waitControllerManager(ctx context.Context) error {
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true,
		func(ctx context.Context) (bool, error) {
			for _, p := range c.procs {
				if done, err := p.exited(); done {
					return false, fmt.Errorf("%s exited early, see %s: %w", p.name,
						filepath.Join(c.WorkDir, "logs", p.name+".log"), errors.Join(err, errExited))
				}
			}
			_, err := c.Kube.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return false, nil
			}
			return err == nil, err
		})
	if err != nil {
		return fmt.Errorf("cluster: kube-controller-manager did not start: %w", err)
	}
	return nil
}

// errExited reports a component that ended while the cluster starts.
var errExited = errors.New("cluster: component exited")

// LogDir is where the control-plane components, the operator and the node
// agent's pods write their logs.
func (c *Cluster) LogDir() string { return filepath.Join(c.WorkDir, "logs") }
