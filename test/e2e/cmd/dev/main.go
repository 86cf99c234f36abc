package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/controllers/resources"
	"github.com/bollard-io/bollard/test/e2e/cluster"
	"github.com/bollard-io/bollard/test/e2e/nodeagent"
	"github.com/bollard-io/bollard/test/testenv"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "dev:", err)
		os.Exit(1)
	}
}

type flags struct {
	sample    string
	namespace string
	workDir   string
	anonymous bool
}

func parseFlags() (flags, error) {
	root, err := testenv.RepoRoot()
	if err != nil {
		return flags{}, err
	}
	var f flags
	flag.StringVar(&f.sample, "sample", filepath.Join(root, "config", "samples", "mqtt_v1alpha1_mqttbroker_minimal.yaml"),
		"MQTTBroker manifest to apply")
	flag.StringVar(&f.namespace, "namespace", "default", "namespace of the MQTTBroker")
	flag.StringVar(&f.workDir, "work-dir", "", "directory for logs, kubeconfig and volumes (default: a new temporary directory, removed at exit)")
	flag.BoolVar(&f.anonymous, "allow-anonymous", true, "set spec.auth.allowAnonymous, so mosquitto clients connect without credentials")
	flag.Parse()
	return f, nil
}

func run() error {
	f, err := parseFlags()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	binDir, err := os.MkdirTemp("", "bollard-dev-bin-")
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	defer os.RemoveAll(binDir)
	c, err := startCluster(ctx, f.workDir, binDir)
	if err != nil {
		return err
	}
	defer func() {
		fmt.Println("\nstopping...")
		if err := c.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "dev:", err)
		}
	}()
	b, err := applySample(ctx, c, f)
	if err != nil {
		return err
	}
	pod, err := waitReady(ctx, c, b)
	if err != nil {
		return err
	}
	if err := printHowTo(c, b, pod); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// startCluster builds bollard into binDir and starts the cluster with the
// operator. The node agent's log goes to workDir, or binDir.
func startCluster(ctx context.Context, workDir, binDir string) (*cluster.Cluster, error) {
	fmt.Println("building bollard and starting the cluster (kube-apiserver, etcd, kube-controller-manager, kube-scheduler, operator, node agent)...")
	bin, err := cluster.BuildBollard(ctx, binDir)
	if err != nil {
		return nil, err
	}
	logDir := workDir
	if logDir == "" {
		logDir = binDir
	}
	logf, err := os.Create(filepath.Join(logDir, "nodeagent.log"))
	if err != nil {
		return nil, fmt.Errorf("dev: %w", err)
	}
	c, err := cluster.Start(ctx, cluster.Options{
		WorkDir: workDir,
		Logger:  slog.New(slog.NewTextHandler(logf, nil)),
		Agent:   nodeagent.Options{Resolve: cluster.BollardResolver(bin, nil)},
	})
	if err != nil {
		return nil, err
	}
	if err := c.StartOperator(ctx); err != nil {
		return nil, errors.Join(err, c.Stop())
	}
	return c, nil
}

// applySample creates the sample MQTTBroker.
func applySample(ctx context.Context, c *cluster.Cluster, f flags) (*v1alpha1.MQTTBroker, error) {
	raw, err := os.ReadFile(f.sample)
	if err != nil {
		return nil, fmt.Errorf("dev: %w", err)
	}
	b := &v1alpha1.MQTTBroker{}
	if err := yaml.UnmarshalStrict(raw, b); err != nil {
		return nil, fmt.Errorf("dev: %s: %w", f.sample, err)
	}
	b.Namespace = f.namespace
	if f.anonymous {
		b.Spec.Auth.AllowAnonymous = true
	}
	if err := c.Client.Create(ctx, b); err != nil {
		return nil, fmt.Errorf("dev: applying %s: %w", f.sample, err)
	}
	fmt.Printf("applied %s (MQTTBroker %s/%s); waiting until it is Ready...\n", f.sample, b.Namespace, b.Name)
	return b, nil
}

// waitReady waits for the Ready condition and returns the broker's pod.
func waitReady(ctx context.Context, c *cluster.Cluster, b *v1alpha1.MQTTBroker) (*corev1.Pod, error) {
	var pod corev1.Pod
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		var cur v1alpha1.MQTTBroker
		if err := c.Client.Get(ctx, client.ObjectKeyFromObject(b), &cur); err != nil {
			return false, nil
		}
		if !meta.IsStatusConditionTrue(cur.Status.Conditions, v1alpha1.ConditionReady) {
			return false, nil
		}
		key := client.ObjectKey{Namespace: b.Namespace, Name: resources.StatefulSetName(b) + "-0"}
		return c.Client.Get(ctx, key, &pod) == nil, nil
	})
	if err != nil {
		return nil, fmt.Errorf("dev: MQTTBroker %s/%s not Ready (logs in %s): %w", b.Namespace, b.Name, c.LogDir(), err)
	}
	return &pod, nil
}

func printHowTo(c *cluster.Cluster, b *v1alpha1.MQTTBroker, pod *corev1.Pod) error {
	ports, err := nodeagent.PortMap(pod)
	if err != nil {
		return err
	}
	fmt.Printf("\nBollard is running: MQTTBroker %s/%s is Ready.\n\n", b.Namespace, b.Name)
	// The client Service's address, as users connect (the node agent
	// carries it to the ready broker pods); the pod's own port otherwise.
	addr, ok := ports[resources.PortMQTT]
	if svc, err := c.Agent.ServiceAddr(b.Namespace, resources.ServiceName(b), resources.PortMQTT); err == nil {
		addr, ok = svc, true
	}
	if ok {
		host, port := splitAddr(addr)
		fmt.Printf("  mosquitto_sub -h %s -p %s -t 'hello/#' -v -q 1\n", host, port)
		fmt.Printf("  mosquitto_pub -h %s -p %s -t hello/world -m 'hi' -q 1\n\n", host, port)
	}
	if addr, ok := ports[resources.PortAdmin]; ok {
		fmt.Printf("  curl -H \"Authorization: Bearer $(kubectl --kubeconfig %s get secret %s -n %s -o jsonpath='{.data.token}' | base64 -d)\" http://%s/v1/status\n",
			c.Kubeconfig, resources.AdminTokenSecretName(b), b.Namespace, addr)
	}
	fmt.Printf("  kubectl --kubeconfig %s get mqttbrokers,statefulsets,pods,pvc -o wide\n", c.Kubeconfig)
	fmt.Printf("  kubectl --kubeconfig %s edit mqttbroker %s -n %s\n\n", c.Kubeconfig, b.Name, b.Namespace)
	fmt.Printf("  logs: %s (control plane, operator), %s (broker)\n", c.LogDir(),
		c.Agent.LogPath(pod.Namespace, pod.Name, pod.Spec.Containers[0].Name))
	fmt.Println("\nThe broker pod is a local bollard process; its ports are remapped to 127.0.0.1 " +
		"(pod annotation " + nodeagent.PortsAnnotation + "), and the MQTT address above is the client " +
		"Service's, which the node agent carries to the ready pods. Press Ctrl-C to stop everything.")
	return nil
}

func splitAddr(addr string) (host, port string) {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			return addr[:i], addr[i+1:]
		}
	}
	return addr, ""
}
