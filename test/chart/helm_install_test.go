//go:build e2e && external

package chart_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/test/e2e/cluster"
	"github.com/bollard-io/bollard/test/e2e/nodeagent"
	"github.com/bollard-io/bollard/test/poll"
)

const (
	crdName = "mqttbrokers.mqtt.bollard.io"
	// operatorName is the chart's full name for release "bollard".
	operatorName = release + "-bollard-operator"
	// leaseName is the operator's LeaderElectionID (cmd/bollard-operator).
	leaseName = "bollard-operator.mqtt.bollard.io"
)

// TestHelmInstallInE2ECluster installs the chart with `helm install --wait`
// into the e2e cluster (a real kube-apiserver, controller manager and
// scheduler, and the node agent running pods as local processes) and
// checks that it runs a broker:
//
//   - the operator Deployment's pod runs as a real bollard-operator process
//     (built from this checkout), started with the chart's flags and probed
//     through the chart's readiness probe;
//   - it authenticates as the chart's ServiceAccount (a bound token in a
//     kubeconfig passed through the chart's extraEnv, since the node agent
//     mounts no service account token), so the apiserver enforces the
//     chart's RBAC: leader election and every reconcile step must be
//     allowed by it;
//   - the chart creates the CRD (envtest's copy is deleted first), the
//     sample MQTTBroker of config/samples becomes Ready, `helm upgrade`
//     upgrades the CRD (the reason it is a template, not in crds/), and
//     `helm uninstall` keeps the CRD and the broker (crds.keep).
func TestHelmInstallInE2ECluster(t *testing.T) {
	helmBin := tool(t, "helm")
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	dir := t.TempDir()
	began := time.Now()
	c := startCluster(ctx, t, dir)
	t.Logf("binaries built and cluster up in %s", time.Since(began).Round(time.Second))

	deleteEnvtestCRD(ctx, t, c)
	kubeconfig := operatorKubeconfig(ctx, t, c, dir)

	helmEnv := []string{
		"HELM_CACHE_HOME=" + filepath.Join(dir, "helm", "cache"),
		"HELM_CONFIG_HOME=" + filepath.Join(dir, "helm", "config"),
		"HELM_DATA_HOME=" + filepath.Join(dir, "helm", "data"),
		"KUBECONFIG=" + c.Kubeconfig,
	}
	out, err := run(t, helmEnv, helmBin, "install", release, chartDir, "--namespace", namespace,
		"--wait", "--timeout", "3m",
		"--set", "image.tag=e2e",
		"--set-json", fmt.Sprintf(`extraEnv=[{"name":"KUBECONFIG","value":%q}]`, kubeconfig))
	if err != nil {
		dumpOperatorLog(ctx, t, c)
		t.Fatalf("helm install: %v\n%s", err, out)
	}
	t.Logf("helm install --wait done at %s:\n%s", time.Since(began).Round(time.Second), out)
	checkCRDFromChart(ctx, t, c)
	checkLeader(ctx, t, c)

	b := applySample(ctx, t, c)
	err = pollFor(ctx, 3*time.Minute, func(ctx context.Context) (bool, error) {
		if err := c.Client.Get(ctx, client.ObjectKeyFromObject(b), b); err != nil {
			return false, err
		}
		return meta.IsStatusConditionTrue(b.Status.Conditions, v1alpha1.ConditionReady), nil
	})
	if err != nil {
		dumpOperatorLog(ctx, t, c)
		t.Fatalf("MQTTBroker %s not Ready: %v\nconditions: %+v", b.Name, err, b.Status.Conditions)
	}
	t.Logf("MQTTBroker %s/%s Ready at %s: endpoint %s", b.Namespace, b.Name, time.Since(began).Round(time.Second), b.Status.Endpoint)

	upgradeChangesCRD(ctx, t, c, helmEnv, helmBin, dir)
	if err := c.Client.Get(ctx, client.ObjectKeyFromObject(b), b); err != nil ||
		!meta.IsStatusConditionTrue(b.Status.Conditions, v1alpha1.ConditionReady) {
		t.Errorf("after helm upgrade, MQTTBroker %s is not Ready (%v): %+v", b.Name, err, b.Status.Conditions)
	}

	if out, err := run(t, helmEnv, helmBin, "uninstall", release, "--namespace", namespace, "--wait"); err != nil {
		t.Fatalf("helm uninstall: %v\n%s", err, out)
	}
	checkLeaseGone(ctx, t, c)
	if err := c.Client.Get(ctx, client.ObjectKeyFromObject(b), b); err != nil {
		t.Errorf("after helm uninstall, the MQTTBroker is gone (the CRD should be kept): %v", err)
	}
}

// upgradeChangesCRD runs `helm upgrade` with a copy of the chart whose CRD
// template carries one more annotation, and checks that the CRD in the
// cluster got it: Helm never upgrades CRDs from a chart's crds/ directory.
func upgradeChangesCRD(ctx context.Context, t *testing.T, c *cluster.Cluster, helmEnv []string, helmBin, dir string) {
	t.Helper()
	next := filepath.Join(dir, "chart-next")
	if err := os.CopyFS(next, os.DirFS(filepath.Join(root(t), chartDir))); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(next, "templates", "crds", "mqtt.bollard.io_mqttbrokers.yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const marker = "    helm.sh/resource-policy: keep\n"
	if !strings.Contains(string(b), marker) {
		t.Fatalf("%s has no keep annotation line", path)
	}
	b = []byte(strings.Replace(string(b), marker, marker+"    bollard.io/upgraded: \"true\"\n", 1))
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, helmEnv, helmBin, "upgrade", release, next, "--namespace", namespace,
		"--reuse-values", "--wait", "--timeout", "3m")
	if err != nil {
		dumpOperatorLog(ctx, t, c)
		t.Fatalf("helm upgrade: %v\n%s", err, out)
	}
	crd := &unstructured.Unstructured{}
	crd.SetAPIVersion("apiextensions.k8s.io/v1")
	crd.SetKind("CustomResourceDefinition")
	if err := c.Client.Get(ctx, client.ObjectKey{Name: crdName}, crd); err != nil {
		t.Fatal(err)
	}
	if crd.GetAnnotations()["bollard.io/upgraded"] != "true" {
		t.Errorf("helm upgrade did not upgrade CRD %s: annotations %v", crdName, crd.GetAnnotations())
	}
}

// startCluster builds bollard and bollard-operator from this checkout and
// starts the e2e cluster, whose node agent runs the operator image's
// `bollard-operator` command as the operator binary and every other
// bollard container as the broker.
func startCluster(ctx context.Context, t *testing.T, dir string) *cluster.Cluster {
	t.Helper()
	bollard, err := cluster.BuildBollard(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	operator := filepath.Join(dir, "bollard-operator")
	build := exec.CommandContext(ctx, "go", "build", "-o", operator, "./cmd/bollard-operator")
	build.Dir = root(t)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building cmd/bollard-operator: %v\n%s", err, b)
	}
	brokers := cluster.BollardResolver(bollard, nil)
	resolve := func(ctr *corev1.Container) (string, error) {
		if len(ctr.Command) > 0 && filepath.Base(ctr.Command[0]) == "bollard-operator" {
			return operator, nil
		}
		return brokers(ctr)
	}
	c, err := cluster.Start(ctx, cluster.Options{
		WorkDir: filepath.Join(dir, "cluster"),
		Agent:   nodeagent.Options{Resolve: resolve},
		Logger:  testLogger(t, dir),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("stopping the cluster: %v", err)
		}
	})
	return c
}

// testLogger writes the cluster harness's log to dir/harness.log.
func testLogger(t *testing.T, dir string) *slog.Logger {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "harness.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return slog.New(slog.NewTextHandler(f, nil))
}

// deleteEnvtestCRD removes the CRD that envtest installs at start, so the
// chart installs it as on a fresh cluster.
func deleteEnvtestCRD(ctx context.Context, t *testing.T, c *cluster.Cluster) {
	t.Helper()
	crd := &unstructured.Unstructured{}
	crd.SetAPIVersion("apiextensions.k8s.io/v1")
	crd.SetKind("CustomResourceDefinition")
	crd.SetName(crdName)
	if err := c.Client.Delete(ctx, crd); err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	err := pollFor(ctx, time.Minute, func(ctx context.Context) (bool, error) {
		err := c.Client.Get(ctx, client.ObjectKeyFromObject(crd), crd)
		return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
	})
	if err != nil {
		t.Fatalf("deleting envtest's CRD: %v", err)
	}
}

// operatorKubeconfig creates the release namespace and the operator's
// ServiceAccount (with Helm's ownership metadata, so `helm install` adopts
// it), and writes a kubeconfig holding a token bound to that account.
func operatorKubeconfig(ctx context.Context, t *testing.T, c *cluster.Cluster, dir string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}
	if _, err := c.Kube.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{
		Name: operatorName, Namespace: namespace,
		Labels:      map[string]string{"app.kubernetes.io/managed-by": "Helm"},
		Annotations: map[string]string{"meta.helm.sh/release-name": release, "meta.helm.sh/release-namespace": namespace},
	}}
	if _, err := c.Kube.CoreV1().ServiceAccounts(namespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}
	tok, err := c.Kube.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, operatorName, tr, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for the operator's ServiceAccount: %v", err)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["e2e"] = &clientcmdapi.Cluster{
		Server: c.Config.Host, CertificateAuthorityData: c.Config.CAData, InsecureSkipTLSVerify: len(c.Config.CAData) == 0,
	}
	cfg.AuthInfos["operator"] = &clientcmdapi.AuthInfo{Token: tok.Status.Token}
	cfg.Contexts["operator"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: "operator", Namespace: namespace}
	cfg.CurrentContext = "operator"
	path := filepath.Join(dir, "operator.kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkCRDFromChart checks that the CRD in the cluster is the chart's.
func checkCRDFromChart(ctx context.Context, t *testing.T, c *cluster.Cluster) {
	t.Helper()
	crd := &unstructured.Unstructured{}
	crd.SetAPIVersion("apiextensions.k8s.io/v1")
	crd.SetKind("CustomResourceDefinition")
	if err := c.Client.Get(ctx, client.ObjectKey{Name: crdName}, crd); err != nil {
		t.Fatal(err)
	}
	if crd.GetLabels()["app.kubernetes.io/managed-by"] != "Helm" || crd.GetAnnotations()["helm.sh/resource-policy"] != "keep" {
		t.Errorf("CRD %s was not installed by the chart: labels %v, annotations %v", crdName, crd.GetLabels(), crd.GetAnnotations())
	}
}

// checkLeader checks that the operator, running as its ServiceAccount,
// won the leader election Lease in the release namespace.
func checkLeader(ctx context.Context, t *testing.T, c *cluster.Cluster) {
	t.Helper()
	var lease coordinationv1.Lease
	err := pollFor(ctx, time.Minute, func(ctx context.Context) (bool, error) {
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: leaseName}, &lease); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		return ptr.Deref(lease.Spec.HolderIdentity, "") != "", nil
	})
	if err != nil {
		dumpOperatorLog(ctx, t, c)
		t.Fatalf("the operator holds no Lease %s/%s: %v", namespace, leaseName, err)
	}
	// The leader owns the Lease by its pod, so the Lease goes with it
	// (issue 11: after `helm uninstall` a reinstall waited out the Lease).
	err = pollFor(ctx, 30*time.Second, func(ctx context.Context) (bool, error) {
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: leaseName}, &lease); err != nil {
			return false, err
		}
		refs := lease.GetOwnerReferences()
		if len(refs) != 1 || refs[0].Kind != "Pod" || !strings.HasPrefix(refs[0].Name, operatorName+"-") {
			return false, nil
		}
		var pod corev1.Pod
		err := c.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: refs[0].Name}, &pod)
		return err == nil && pod.UID == refs[0].UID, err
	})
	if err != nil {
		dumpOperatorLog(ctx, t, c)
		t.Fatalf("Lease %s/%s is not owned by the leader's pod: %v (owners %+v, holder %q)", namespace, leaseName, err,
			lease.GetOwnerReferences(), ptr.Deref(lease.Spec.HolderIdentity, ""))
	}
	// client-go's leader election records "became leader" through the core
	// events API; the chart's Role must allow it (issue 11: it granted only
	// events.k8s.io, and every election logged "events is forbidden").
	err = pollFor(ctx, 30*time.Second, func(ctx context.Context) (bool, error) {
		evs, err := c.Kube.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, e := range evs.Items {
			if e.Reason == "LeaderElection" && e.InvolvedObject.Kind == "Lease" {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		dumpOperatorLog(ctx, t, c)
		t.Fatalf("no LeaderElection event in %s (the leader election Role must allow core events): %v", namespace, err)
	}
}

// checkLeaseGone checks that the Lease went with the operator's pod after
// `helm uninstall`, so a reinstall elects a leader at once.
func checkLeaseGone(ctx context.Context, t *testing.T, c *cluster.Cluster) {
	t.Helper()
	// The pod has 10 s to stop (the chart's grace period), then the
	// garbage collector deletes the Lease; on a loaded machine that took
	// over a minute once.
	err := pollFor(ctx, 2*time.Minute, func(ctx context.Context) (bool, error) {
		err := c.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: leaseName}, &coordinationv1.Lease{})
		return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
	})
	if err != nil {
		var lease coordinationv1.Lease
		gerr := c.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: leaseName}, &lease)
		pods, perr := c.Kube.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
		var names []string
		if perr == nil {
			for _, p := range pods.Items {
				names = append(names, fmt.Sprintf("%s(%s, deleting %v)", p.Name, p.UID, p.DeletionTimestamp != nil))
			}
		}
		t.Errorf("after helm uninstall the Lease %s/%s is still there: %v; lease owners %+v (%v), holder %q; pods %v (%v)",
			namespace, leaseName, err, lease.OwnerReferences, gerr, ptr.Deref(lease.Spec.HolderIdentity, ""), names, perr)
	}
}

// applySample creates config/samples' minimal MQTTBroker in "default".
func applySample(ctx context.Context, t *testing.T, c *cluster.Cluster) *v1alpha1.MQTTBroker {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root(t), "config", "samples", "mqtt_v1alpha1_mqttbroker_minimal.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	b := &v1alpha1.MQTTBroker{}
	if err := yaml.UnmarshalStrict(raw, b); err != nil {
		t.Fatal(err)
	}
	b.Namespace = "default"
	if err := c.Client.Create(ctx, b); err != nil {
		t.Fatalf("creating the sample MQTTBroker: %v", err)
	}
	return b
}

// pollFor calls cond every 200ms until it is true or timeout passes; the
// error names cond's last error.
func pollFor(ctx context.Context, timeout time.Duration, cond func(context.Context) (bool, error)) error {
	if err := poll.Until(ctx, timeout, 200*time.Millisecond, poll.Check(cond)); err != nil {
		return fmt.Errorf("not within %s (last error: %w)", timeout, err)
	}
	return nil
}

// dumpOperatorLog logs the operator pods' output, for failures.
func dumpOperatorLog(ctx context.Context, t *testing.T, c *cluster.Cluster) {
	t.Helper()
	pods, err := c.Kube.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Logf("listing operator pods: %v", err)
		return
	}
	for _, p := range pods.Items {
		path := c.Agent.LogPath(p.Namespace, p.Name, "operator")
		b, err := os.ReadFile(path)
		if err != nil {
			t.Logf("pod %s: phase %s, no log (%v)", p.Name, p.Status.Phase, err)
			continue
		}
		lines := strings.Split(string(b), "\n")
		t.Logf("pod %s (phase %s), last lines of %s:\n%s", p.Name, p.Status.Phase, path,
			strings.Join(lines[max(0, len(lines)-60):], "\n"))
	}
}
