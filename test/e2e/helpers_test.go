//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bollard-io/bollard/test/e2e/cluster"
	"github.com/bollard-io/bollard/test/e2e/nodeagent"
	"github.com/bollard-io/bollard/test/poll"
)

func nodeagentOptions(bollard, self string) nodeagent.Options {
	return nodeagent.Options{
		Resolve: cluster.BollardResolver(bollard, map[string]string{standinImage: self}),
		// Probes and volume refreshes as a kubelet times them (issue 11:
		// the agent's shortcuts hid an 11 s Ready and a 66 s hot change).
		KubeletTiming: true,
	}
}

// eventually polls cond every 100ms until it returns true, fails the test
// when timeout passes, and reports cond's last error.
func eventually(t *testing.T, timeout time.Duration, what string, cond func(ctx context.Context) (bool, error)) {
	t.Helper()
	if err := poll.Until(t.Context(), timeout, 100*time.Millisecond, poll.Check(cond)); err != nil {
		t.Fatalf("%s: not within %s (last error: %v)", what, timeout, err)
	}
}

// namespace creates a namespace for one test and deletes it afterwards.
func namespace(t *testing.T, prefix string) string {
	t.Helper()
	name := fmt.Sprintf("%s-%04x", prefix, rand.IntN(1<<16))
	kube := testCluster.Kube
	if _, err := kube.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: name},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := kube.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Logf("deleting namespace %s: %v", name, err)
		}
	})
	return name
}

// readyPod waits until the named pod is Ready and returns it.
func readyPod(t *testing.T, ns, name string, timeout time.Duration) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	eventually(t, timeout, fmt.Sprintf("pod %s/%s Ready", ns, name), func(ctx context.Context) (bool, error) {
		p, err := testCluster.Kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		pod = p
		return p.DeletionTimestamp == nil && podReady(p), nil
	})
	return pod
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// portAddr is the local address of a pod's container port.
func portAddr(t *testing.T, pod *corev1.Pod, port string) string {
	t.Helper()
	m, err := nodeagent.PortMap(pod)
	if err != nil {
		t.Fatal(err)
	}
	addr, ok := m[port]
	if !ok {
		t.Fatalf("pod %s has no port %q in %v", pod.Name, port, m)
	}
	return addr
}

func restartCount(p *corev1.Pod) int32 {
	var n int32
	for _, s := range p.Status.ContainerStatuses {
		n += s.RestartCount
	}
	return n
}

// serviceAddr is the local address where the node agent carries a Service
// port (by name or number), as kube-proxy carries its cluster IP; it waits
// until the agent proxies the port.
func serviceAddr(t *testing.T, ns, svc, port string) string {
	t.Helper()
	var addr string
	eventually(t, 30*time.Second, fmt.Sprintf("a proxy for port %s of Service %s/%s", port, ns, svc), func(context.Context) (bool, error) {
		a, err := testCluster.Agent.ServiceAddr(ns, svc, port)
		addr = a
		return err == nil, err
	})
	return addr
}
