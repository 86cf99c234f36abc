package controllers

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"

	corev1 "k8s.io/api/core/v1"

	"github.com/bollard-io/bollard/api/v1alpha1"
)

// adminAnswer is a broker admin endpoint's answer, read up to a bound.
type adminAnswer struct {
	body   []byte
	code   int
	status string
}

// callAdmin sends one request to the admin port of pod (port 0:
// v1alpha1.AdminPort) with the admin token, and reads at most limit bytes
// of the answer. Every call the operator makes to a broker goes through it:
// HTTPBrokerStatusReader and HTTPClusterAdmin. The caller judges the status.
func callAdmin(ctx context.Context, c *http.Client, port int, pod *corev1.Pod, token, method, path string, body []byte, limit int64) (adminAnswer, error) {
	if pod.Status.PodIP == "" {
		return adminAnswer{}, fmt.Errorf("controllers: pod %s has no IP yet", pod.Name)
	}
	if port == 0 {
		port = v1alpha1.AdminPort
	}
	u := "http://" + net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(port)) + path
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return adminAnswer{}, fmt.Errorf("controllers: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return adminAnswer{}, fmt.Errorf("controllers: %w", err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return adminAnswer{}, fmt.Errorf("controllers: reading %s %s of %s: %w", method, path, pod.Name, err)
	}
	return adminAnswer{body: out, code: resp.StatusCode, status: resp.Status}, nil
}
