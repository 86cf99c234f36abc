package nodeagent

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// probe runs the startup probe until it succeeds, then the readiness probe,
// until ctx (the life of one process) ends. Without a readiness probe a
// started container is ready.
func (c *container) probe(ctx context.Context) {
	if p := c.spec.StartupProbe; p != nil {
		if !c.runProbe(ctx, p, c.setStarted) {
			return
		}
	}
	if c.spec.ReadinessProbe == nil {
		c.setReady(true)
		return
	}
	c.runProbe(ctx, c.spec.ReadinessProbe, c.setReady)
}

// runProbe checks p at most every MaxProbePeriod and reports transitions by
// p's thresholds to set. For a startup probe (set == c.setStarted) it
// returns true on the first success; failureThreshold failures kill the
// process, as the kubelet restarts a container that failed to start. It
// returns false when ctx ends.
func (c *container) runProbe(ctx context.Context, p *corev1.Probe, set func(bool)) bool {
	period := time.Duration(max(p.PeriodSeconds, 1)) * time.Second
	if !c.a.opts.KubeletTiming {
		period = min(period, c.a.opts.MaxProbePeriod)
	}
	timeout := time.Duration(max(p.TimeoutSeconds, 1)) * time.Second
	startup := p == c.spec.StartupProbe
	successes, failures := 0, 0
	t := time.NewTicker(period)
	defer t.Stop()
	if c.a.opts.KubeletTiming {
		// The kubelet's first probe comes a period after the start.
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	for {
		if err := c.check(ctx, p, timeout); err == nil {
			successes, failures = successes+1, 0
			if startup {
				set(true)
				return true
			}
			if successes >= int(max(p.SuccessThreshold, 1)) {
				set(true)
			}
		} else {
			successes, failures = 0, failures+1
			if failures >= int(max(p.FailureThreshold, 1)) {
				if startup {
					c.signal(9)
					return false
				}
				set(false)
			}
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
}

func (c *container) setReady(v bool)   { c.setFlag("ready", &c.ready, v) }
func (c *container) setStarted(v bool) { c.setFlag("started", &c.started, v) }

// setFlag sets a probe's outcome; a change is logged (the start of the
// chain that ends with a Service's endpoints) and syncs the pod.
func (c *container) setFlag(name string, f *bool, v bool) {
	c.mu.Lock()
	changed := *f != v && c.pid > 0
	if changed {
		*f = v
	}
	c.mu.Unlock()
	if changed {
		c.a.log.Info("probe outcome changed", "pod", c.rt.key, "container", c.spec.Name, name, v)
		c.notify()
	}
}

// check runs one probe against the remapped port on 127.0.0.1. Exec probes
// are not supported and always pass.
func (c *container) check(ctx context.Context, p *corev1.Probe, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch {
	case p.HTTPGet != nil:
		return c.checkHTTP(ctx, p.HTTPGet)
	case p.TCPSocket != nil:
		port, err := c.localPort(p.TCPSocket.Port)
		if err != nil {
			return err
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			return fmt.Errorf("nodeagent: probe: %w", err)
		}
		return conn.Close()
	}
	return nil
}

func (c *container) checkHTTP(ctx context.Context, g *corev1.HTTPGetAction) error {
	port, err := c.localPort(g.Port)
	if err != nil {
		return err
	}
	url := fmt.Sprintf("http://127.0.0.1:%d%s", port, g.Path)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("nodeagent: probe: %w", err)
	}
	for _, h := range g.HTTPHeaders {
		req.Header.Add(h.Name, h.Value)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("nodeagent: probe: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("nodeagent: probe GET %s: %s", url, resp.Status)
	}
	return nil
}

func (c *container) localPort(p intstr.IntOrString) (int, error) {
	if port, ok := c.ports[p.String()]; ok {
		return port, nil
	}
	return 0, fmt.Errorf("nodeagent: probe port %s is not a container port of %s", p.String(), c.spec.Name)
}
