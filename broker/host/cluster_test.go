package host

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/bollard-io/bollard/broker/adminapi"
	"github.com/bollard-io/bollard/broker/cluster"
)

// fakeCluster is a ClusterAdmin that records the changes asked of it.
type fakeCluster struct {
	mu      sync.Mutex
	leader  bool
	added   []cluster.Member
	removed []string
	moved   int
}

func (f *fakeCluster) Status() cluster.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	lag, match := uint64(3), uint64(40)
	role := cluster.Follower
	if f.leader {
		role = cluster.Leader
	}
	return cluster.Status{ID: "b-0", Role: role, Serving: f.leader, Term: 7, LeaderID: "b-1", LastLogIndex: 43, CommitIndex: 43, AppliedIndex: 43,
		Members: []cluster.MemberStatus{{ID: "b-0", Voter: true}, {ID: "b-1", Voter: true, MatchIndex: &match, Lag: &lag}, {ID: "b-2"}},
		Log:     cluster.ClusterLog{Appends: 40, WrittenEntries: 41, WrittenBytes: 9000, SegmentsFromSpare: 5, SegmentsFilledInPlace: 1, TruncatedHead: 20, TruncatedTail: 2}}
}

func (f *fakeCluster) AddMember(_ context.Context, m cluster.Member) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.leader {
		return cluster.ErrNotLeader
	}
	if m.ID == "old-build" {
		return fmt.Errorf("%w: old-build reads format 1 at most", cluster.ErrMemberFormat)
	}
	f.added = append(f.added, m)
	return nil
}

func (f *fakeCluster) RemoveMember(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.leader {
		return cluster.ErrNotLeader
	}
	f.removed = append(f.removed, id)
	return nil
}

func (f *fakeCluster) TransferLeadership() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.leader {
		return cluster.ErrNotLeader
	}
	f.moved++
	return nil
}

func clusterServer(t *testing.T, fc *fakeCluster, a *AdminAuth) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(NewAdminHandler(AdminConfig{
		Backend: newFakeEngine(), Ready: func() bool { return true }, Log: testLogger(t), Auth: a, Cluster: fc,
	}))
	t.Cleanup(srv.Close)
	return srv
}

func post(t *testing.T, srv *httptest.Server, method, path, body, authz string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	_, _ = io.Copy(&b, resp.Body)
	return resp.StatusCode, b.String()
}

func TestClusterAdminEndpoints(t *testing.T) {
	a, _, _ := tokenAuth(t)
	fc := &fakeCluster{}
	srv := clusterServer(t, fc, a)
	bearer := "Bearer " + testAdminToken
	good := `{"id":"b-3","raftAddress":"b-3.h:7946","clientAddress":"b-3.h:1883"}`

	// Every cluster endpoint needs the token.
	for _, c := range []struct{ method, path string }{
		{"GET", "/v1/cluster"}, {"POST", "/v1/cluster/members"}, {"DELETE", "/v1/cluster/members/b-2"}, {"POST", "/v1/cluster/leadership-transfer"},
	} {
		if code, _ := post(t, srv, c.method, c.path, good, ""); code != http.StatusUnauthorized && code != http.StatusForbidden {
			t.Errorf("%s %s without a token: %d", c.method, c.path, code)
		}
	}
	code, body := post(t, srv, "GET", "/v1/cluster", "", bearer)
	var st cluster.Status
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil || st.Term != 7 || len(st.Members) != 3 || *st.Members[1].Lag != 3 {
		t.Fatalf("GET /v1/cluster: %d %v %s", code, err, body)
	}
	// A follower answers changes with 409 and the leader's ID.
	code, body = post(t, srv, "POST", "/v1/cluster/members", good, bearer)
	if code != http.StatusConflict || !strings.Contains(body, `"leader": "b-1"`) {
		t.Fatalf("add on a follower: %d %s", code, body)
	}
	fc.mu.Lock()
	fc.leader = true
	fc.mu.Unlock()
	for name, bad := range map[string]string{
		"not json":      `{`,
		"unknown field": `{"id":"b-3","raftAddress":"h:1","voter":true}`,
		"bad id":        `{"id":"B_3","raftAddress":"h:1"}`,
		"no address":    `{"id":"b-3"}`,
		"oversized":     `{"id":"b-3","raftAddress":"h:1","clientAddress":"` + strings.Repeat("x", 8<<10) + `"}`,
	} {
		if code, body := post(t, srv, "POST", "/v1/cluster/members", bad, bearer); code != http.StatusBadRequest {
			t.Errorf("%s: %d %s", name, code, body)
		}
	}
	if code, body := post(t, srv, "POST", "/v1/cluster/members", good, bearer); code != 200 {
		t.Fatalf("add: %d %s", code, body)
	}
	// A member of a build that cannot read the log: 409, with a reason
	// (asking again, or the leader, will not help).
	code, body = post(t, srv, "POST", "/v1/cluster/members", `{"id":"old-build","raftAddress":"o.h:7946","clientAddress":"o.h:1883"}`, bearer)
	var refusal adminapi.Error
	if err := json.Unmarshal([]byte(body), &refusal); code != http.StatusConflict || err != nil ||
		refusal.Reason != adminapi.ReasonMemberFormat || refusal.Leader != "" || !strings.Contains(refusal.Error, "old-build reads format 1") {
		t.Fatalf("add a member that reads an older format: %d %s", code, body)
	}
	if code, body := post(t, srv, "DELETE", "/v1/cluster/members/b-2", "", bearer); code != 200 {
		t.Fatalf("remove: %d %s", code, body)
	}
	if code, body := post(t, srv, "POST", "/v1/cluster/leadership-transfer", "", bearer); code != 200 {
		t.Fatalf("transfer: %d %s", code, body)
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if len(fc.added) != 1 || fc.added[0].ID != "b-3" || fc.added[0].ClientAddress != "b-3.h:1883" || len(fc.removed) != 1 || fc.removed[0] != "b-2" || fc.moved != 1 {
		t.Fatalf("changes made: added %+v removed %v transfers %d", fc.added, fc.removed, fc.moved)
	}
}

func TestClusterStatusAndMetrics(t *testing.T) {
	srv := clusterServer(t, &fakeCluster{leader: true}, openAdminAuth(t))
	code, body := post(t, srv, "GET", "/v1/status", "", "")
	if code != 200 || !strings.Contains(body, `"cluster": {`) || !strings.Contains(body, `"role": "leader"`) {
		t.Fatalf("/v1/status: %d %s", code, body)
	}
	_, metrics := post(t, srv, "GET", "/metrics", "", "")
	for _, want := range []string{
		`bollard_cluster_role{role="leader"} 1`, `bollard_cluster_role{role="follower"} 0`, "bollard_cluster_serving 1",
		"bollard_cluster_term 7", `bollard_cluster_log_index{kind="applied"} 43`, `bollard_cluster_members{suffrage="voter"} 2`,
		`bollard_cluster_members{suffrage="nonvoter"} 1`, `bollard_cluster_follower_lag_entries{member="b-1"} 3`,
		"bollard_cluster_refused_connections_total 0", "bollard_cluster_log_appends_total 40",
		"bollard_cluster_log_written_entries_total 41", "bollard_cluster_log_written_bytes_total 9000",
		`bollard_cluster_log_segments_total{created="spare"} 5`, `bollard_cluster_log_segments_total{created="in_place"} 1`,
		`bollard_cluster_log_truncated_entries_total{end="head"} 20`, `bollard_cluster_log_truncated_entries_total{end="tail"} 2`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// The serving leader reports its sessions and queues; a member that
	// does not serve holds none in memory and leaves the figures out
	// rather than report zeros; a single node reports them, zeros too.
	figures := []string{`"sessionsOnline"`, `"sessionsOffline"`, `"queuedMessages"`, `"queuedBytes"`, `"topQueues"`, `"fullestQueueRatio"`}
	for _, f := range figures {
		if !strings.Contains(body, f) {
			t.Errorf("the leader's /v1/status lacks %s", f)
		}
	}
	follower := clusterServer(t, &fakeCluster{}, openAdminAuth(t))
	_, fbody := post(t, follower, "GET", "/v1/status", "", "")
	if !strings.Contains(fbody, `"serving": false`) || !strings.Contains(fbody, `"storage"`) || !strings.Contains(fbody, `"configGeneration"`) {
		t.Fatalf("a follower's /v1/status: %s", fbody)
	}
	for _, f := range figures {
		if strings.Contains(fbody, f) {
			t.Errorf("a follower's /v1/status reports %s: %s", f, fbody)
		}
	}
	_, fmetrics := post(t, follower, "GET", "/metrics", "", "")
	for _, m := range []string{"bollard_sessions{", "bollard_queued_messages ", "bollard_queued_bytes ", "bollard_retained_messages ", "bollard_queue_fullest_ratio "} {
		if !strings.Contains(metrics, m) {
			t.Errorf("the leader's /metrics lacks %q", m)
		}
		if strings.Contains(fmetrics, m) {
			t.Errorf("a follower's /metrics exports %q", m)
		}
	}
	if !strings.Contains(fmetrics, "bollard_connections ") || !strings.Contains(fmetrics, "bollard_cluster_serving 0") {
		t.Errorf("a follower's /metrics lacks its own figures")
	}
	// A single node exports none of them.
	single := httptest.NewServer(NewAdminHandler(AdminConfig{Backend: newFakeEngine(), Log: testLogger(t), Auth: openAdminAuth(t)}))
	defer single.Close()
	if _, m := post(t, single, "GET", "/metrics", "", ""); strings.Contains(m, "bollard_cluster_") {
		t.Error("a single node exports cluster metrics")
	}
	if code, _ := post(t, single, "GET", "/v1/cluster", "", ""); code != http.StatusNotFound {
		t.Errorf("/v1/cluster on a single node: %d", code)
	}
	if _, sbody := post(t, single, "GET", "/v1/status", "", ""); !strings.Contains(sbody, `"sessionsOnline"`) || strings.Contains(sbody, `"cluster"`) {
		t.Errorf("a single node's /v1/status: %s", sbody)
	}
}
