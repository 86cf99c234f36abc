//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/controllers/resources"
)

// newBroker is an MQTTBroker for the tests: anonymous clients (the e2e
// clients do not authenticate), the shortest grace period, and queues
// large enough that the traffic scenarios never hit a limit.
func newBroker(ns, name string) *v1alpha1.MQTTBroker {
	return &v1alpha1.MQTTBroker{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.MQTTBrokerSpec{
			Auth:                          v1alpha1.Auth{AllowAnonymous: true},
			TerminationGracePeriodSeconds: ptr.To(int64(15)),
			Queues:                        v1alpha1.Queues{MaxQueuedMessages: 1_000_000},
		},
	}
}

// createBroker applies b and waits until it is Ready for its generation.
func createBroker(t *testing.T, b *v1alpha1.MQTTBroker, timeout time.Duration) {
	t.Helper()
	if err := testCluster.Client.Create(t.Context(), b); err != nil {
		t.Fatalf("creating MQTTBroker %s/%s: %v", b.Namespace, b.Name, err)
	}
	waitBrokerCondition(t, b.Namespace, b.Name, v1alpha1.ConditionReady, timeout)
}

// waitBrokerCondition waits until the condition is True for the
// MQTTBroker's current generation.
func waitBrokerCondition(t *testing.T, ns, name, cond string, timeout time.Duration) *v1alpha1.MQTTBroker {
	t.Helper()
	var b v1alpha1.MQTTBroker
	eventually(t, timeout, fmt.Sprintf("MQTTBroker %s/%s %s", ns, name, cond), func(ctx context.Context) (bool, error) {
		if err := testCluster.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &b); err != nil {
			return false, err
		}
		c := meta.FindStatusCondition(b.Status.Conditions, cond)
		if c == nil {
			return false, fmt.Errorf("no %s condition yet", cond)
		}
		if c.Status != metav1.ConditionTrue || b.Status.ObservedGeneration != b.Generation {
			return false, fmt.Errorf("%s=%s (%s: %s), observedGeneration %d/%d", cond, c.Status, c.Reason, c.Message,
				b.Status.ObservedGeneration, b.Generation)
		}
		return true, nil
	})
	return &b
}

// updateBroker applies mutate to the MQTTBroker, retrying on conflicts.
func updateBroker(t *testing.T, ns, name string, mutate func(*v1alpha1.MQTTBroker)) {
	t.Helper()
	eventually(t, 10*time.Second, "update MQTTBroker "+name, func(ctx context.Context) (bool, error) {
		var b v1alpha1.MQTTBroker
		if err := testCluster.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &b); err != nil {
			return false, err
		}
		mutate(&b)
		return true, testCluster.Client.Update(ctx, &b)
	})
}

// brokerPod returns the broker's (only) pod once it is Ready.
func brokerPod(t *testing.T, ns, name string) *corev1.Pod {
	t.Helper()
	return readyPod(t, ns, name+"-0", 60*time.Second)
}

// brokerStatus reads the broker's GET /v1/status.
func brokerStatus(ctx context.Context, adminAddr string) (map[string]any, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+adminAddr+"/v1/status", nil)
	if err != nil {
		return nil, err
	}
	var st map[string]any
	return st, getJSON(req, &st)
}

// sessionExists asks the admin endpoint whether the broker holds a session
// for clientID, without touching the session.
func sessionExists(ctx context.Context, adminAddr, clientID string) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+adminAddr+"/v1/sessions/"+url.PathEscape(clientID), nil)
	if err != nil {
		return false, err
	}
	err = getJSON(req, &map[string]any{})
	var se statusError
	if errors.As(err, &se) && se.code == http.StatusNotFound {
		return false, nil
	}
	return err == nil, err
}

// statusError is a non-200 answer of the admin endpoint.
type statusError struct {
	code int
	msg  string
}

func (e statusError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.code, e.msg) }

// adminTokens holds the admin token of each broker pod's admin address,
// recorded by adminAddr from the <broker>-admin-token Secret.
var adminTokens sync.Map // host:port -> token

// getJSON does req, with the admin token of its address, and decodes a 200
// answer into v.
func getJSON(req *http.Request, v any) error {
	if tok, ok := adminTokens.Load(req.URL.Host); ok {
		req.Header.Set("Authorization", "Bearer "+tok.(string))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return statusError{code: resp.StatusCode, msg: fmt.Sprintf("GET %s: %s", req.URL.Path, body)}
	}
	return json.Unmarshal(body, v)
}

func mqttAddr(t *testing.T, pod *corev1.Pod) string { return portAddr(t, pod, resources.PortMQTT) }

// adminAddr is the local address of the pod's admin port; it records the
// broker's admin token for getJSON.
func adminAddr(t *testing.T, pod *corev1.Pod) string {
	t.Helper()
	addr := portAddr(t, pod, resources.PortAdmin)
	name := pod.Labels[resources.LabelInstance] + "-admin-token"
	s, err := testCluster.Kube.CoreV1().Secrets(pod.Namespace).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("admin token Secret %s: %v", name, err)
	}
	adminTokens.Store(addr, string(s.Data[resources.AdminTokenKey]))
	return addr
}

func containerID(p *corev1.Pod) string {
	for _, s := range p.Status.ContainerStatuses {
		return s.ContainerID
	}
	return ""
}
