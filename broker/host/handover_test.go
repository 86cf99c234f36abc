package host

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/adminapi"
	"github.com/bollard-io/bollard/broker/cluster"
	"github.com/bollard-io/bollard/broker/replica"
)

// fakeHandover is a fakeCluster with a readiness handover.
type fakeHandover struct {
	*fakeCluster
	role replica.HandoverRole
	ttl  time.Duration
	to   []string
}

func (f *fakeHandover) TransferLeadershipTo(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.leader {
		return cluster.ErrNotLeader
	}
	f.to = append(f.to, id)
	return nil
}

func (f *fakeHandover) PrepareHandover(r replica.HandoverRole, ttl time.Duration) (time.Duration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case ttl > time.Minute:
		return 0, fmt.Errorf("%w: %s", replica.ErrHandoverTTL, ttl)
	case r == replica.HandoverSuccessor && f.leader:
		return 0, fmt.Errorf("%w: already leads", replica.ErrHandover)
	case r == replica.HandoverPredecessor && !f.leader:
		return 0, cluster.ErrNotLeader
	}
	f.role, f.ttl = r, ttl
	return ttl, nil
}

func (f *fakeHandover) HandoverStatus() replica.HandoverStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return replica.HandoverStatus{Role: f.role, Remaining: f.ttl, Held: 2, Served: 5, TimedOut: 1, OverLimit: 3}
}

func handoverServer(t *testing.T, f *fakeHandover, a *AdminAuth, ready func() bool) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(NewAdminHandler(AdminConfig{
		Backend: newFakeEngine(), Ready: ready, Log: testLogger(t), Auth: a, Cluster: f,
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestHandoverEndpoints(t *testing.T) {
	a, _, _ := tokenAuth(t)
	f := &fakeHandover{fakeCluster: &fakeCluster{}}
	srv := handoverServer(t, f, a, func() bool { return true })
	bearer := "Bearer " + testAdminToken

	for _, c := range []struct{ method, path, body string }{
		{"GET", "/v1/cluster/handover", ""}, {"PUT", "/v1/cluster/handover", `{"role":"successor"}`},
		{"DELETE", "/v1/cluster/handover", ""}, {"POST", "/v1/cluster/leadership-transfer", `{"to":"b-2"}`},
	} {
		if code, _ := post(t, srv, c.method, c.path, c.body, ""); code != http.StatusUnauthorized && code != http.StatusForbidden {
			t.Errorf("%s %s without a token: %d", c.method, c.path, code)
		}
	}
	for name, bad := range map[string]string{
		"not json":      `{`,
		"unknown field": `{"role":"successor","forever":true}`,
		"unknown role":  `{"role":"king"}`,
		"no role":       `{}`,
		"negative ttl":  `{"role":"successor","ttlMs":-1}`,
		"huge ttl":      `{"role":"successor","ttlMs":99999999999}`,
		"ttl too long":  `{"role":"successor","ttlMs":120000}`,
		"trailing":      `{"role":"successor"} {"role":"none"}`,
		"oversized":     `{"role":"successor","x":"` + strings.Repeat("x", 2<<10) + `"}`,
	} {
		if code, body := post(t, srv, "PUT", "/v1/cluster/handover", bad, bearer); code != http.StatusBadRequest {
			t.Errorf("%s: %d %s", name, code, body)
		}
	}
	if f.role != replica.HandoverNone {
		t.Fatalf("a refused request changed the role: %v", f.role)
	}
	// A follower may prepare to lead, not step back.
	if code, body := post(t, srv, "PUT", "/v1/cluster/handover", `{"role":"predecessor"}`, bearer); code != http.StatusConflict || !strings.Contains(body, `"leader": "b-1"`) {
		t.Fatalf("predecessor on a follower: %d %s", code, body)
	}
	code, body := post(t, srv, "PUT", "/v1/cluster/handover", `{"role":"successor","ttlMs":20000}`, bearer)
	var v adminapi.Handover
	if err := json.Unmarshal([]byte(body), &v); code != 200 || err != nil || v.Role != "successor" || v.RemainingMilli != 20000 || v.Held != 2 || v.OverLimit != 3 {
		t.Fatalf("prepare: %d %v %s", code, err, body)
	}
	if code, body := post(t, srv, "DELETE", "/v1/cluster/handover", "", bearer); code != 200 || !strings.Contains(body, `"role": "none"`) {
		t.Fatalf("end: %d %s", code, body)
	}
	// A transfer to a named member, on the leader only; a bad body is refused.
	if code, _ := post(t, srv, "POST", "/v1/cluster/leadership-transfer", `{"to":"b-2"}`, bearer); code != http.StatusConflict {
		t.Fatalf("named transfer on a follower: %d", code)
	}
	f.mu.Lock()
	f.leader = true
	f.mu.Unlock()
	for name, bad := range map[string]string{
		"not json": `{`, "unknown field": `{"to":"b-2","force":true}`, "oversized": `{"to":"` + strings.Repeat("x", 2<<10) + `"}`,
	} {
		if code, body := post(t, srv, "POST", "/v1/cluster/leadership-transfer", bad, bearer); code != http.StatusBadRequest {
			t.Errorf("transfer, %s: %d %s", name, code, body)
		}
	}
	if code, body := post(t, srv, "POST", "/v1/cluster/leadership-transfer", `{"to":"b-2"}`, bearer); code != 200 {
		t.Fatalf("named transfer: %d %s", code, body)
	}
	if code, body := post(t, srv, "POST", "/v1/cluster/leadership-transfer", "", bearer); code != 200 {
		t.Fatalf("transfer: %d %s", code, body)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.to) != 1 || f.to[0] != "b-2" || f.moved != 1 {
		t.Fatalf("transfers: named %v, any %d", f.to, f.moved)
	}
}

func TestHandoverReadyzAndMetrics(t *testing.T) {
	f := &fakeHandover{fakeCluster: &fakeCluster{leader: true}, role: replica.HandoverPredecessor, ttl: time.Second}
	srv := handoverServer(t, f, openAdminAuth(t), func() bool { return false })
	if code, body := post(t, srv, "GET", "/readyz", "", ""); code != http.StatusServiceUnavailable || !strings.Contains(body, "handing leadership over") {
		t.Fatalf("/readyz of a stepping-back leader: %d %s", code, body)
	}
	_, metrics := post(t, srv, "GET", "/metrics", "", "")
	for _, want := range []string{
		`bollard_cluster_handover_role{role="predecessor"} 1`, `bollard_cluster_handover_role{role="successor"} 0`,
		"bollard_cluster_held_connections 2", `bollard_cluster_held_connections_total{outcome="served"} 5`,
		`bollard_cluster_held_connections_total{outcome="limit"} 3`, `bollard_cluster_held_connections_total{outcome="timeout"} 1`,
		`bollard_cluster_held_connections_total{outcome="abandoned"} 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
