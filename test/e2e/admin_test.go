//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// adminPost sends POST path to the admin address, with the token when
// authz is set, and returns the status code.
func adminPost(ctx context.Context, addr, path, authz string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+path, nil)
	if err != nil {
		return 0, err
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestAdminDrainRestartsTheBroker: the operator's broker requires its
// admin token: an unauthenticated POST /v1/drain and GET /v1/sessions are
// refused while traffic flows. An authenticated drain is a shutdown step:
// the broker exits, the container restarts on its volume and becomes Ready
// again, and no acknowledged message is lost.
func TestAdminDrainRestartsTheBroker(t *testing.T) {
	ns := namespace(t, "admin")
	createBroker(t, newBroker(ns, "drained"), 60*time.Second)
	pod := brokerPod(t, ns, "drained")
	admin := adminAddr(t, pod) // records the token for getJSON
	tr := startTraffic(t, mqttAddr(t, pod), "drained")
	tr.waitProgress(t, 100, 30*time.Second)

	ctx := t.Context()
	if code, err := adminPost(ctx, admin, "/v1/drain", ""); err != nil || code != http.StatusUnauthorized {
		t.Fatalf("unauthenticated POST /v1/drain = %d %v", code, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/v1/sessions", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req) // no token: not getJSON
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unauthenticated GET /v1/sessions = %d", resp.StatusCode)
	}
	tr.waitProgress(t, 100, 30*time.Second)

	tok, _ := adminTokens.Load(admin)
	if code, err := adminPost(ctx, admin, "/v1/drain", "Bearer "+tok.(string)); err != nil || code != http.StatusAccepted {
		t.Fatalf("authenticated POST /v1/drain = %d %v", code, err)
	}
	eventually(t, 60*time.Second, "the drained broker restarted and Ready", func(ctx context.Context) (bool, error) {
		p, err := testCluster.Kube.CoreV1().Pods(ns).Get(ctx, "drained-0", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if p.UID != pod.UID || restartCount(p) != restartCount(pod)+1 || !podReady(p) {
			return false, fmt.Errorf("pod %s restarts %d ready %v", p.UID, restartCount(p), podReady(p))
		}
		return true, nil
	})
	tr.waitProgress(t, 100, 60*time.Second)
	tr.verify(t, "admin drain")
}
