package controllers

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/bollard-io/bollard/broker/adminapi"
	"github.com/bollard-io/bollard/broker/config"
)

// clusterBody is a GET /v1/cluster body as broker/host writes a leader's
// (cluster.Status), fields the operator ignores included.
const clusterBody = `{"id":"mqb-0","role":"leader","serving":true,"term":4,"leader":"mqb-0",
"leaderClientAddress":"mqb-0.mqb-headless.ns.svc:1883","lastLogIndex":120,"commitIndex":118,"appliedIndex":117,
"lastSnapshotIndex":0,"members":[{"id":"mqb-0","raftAddress":"mqb-0.mqb-headless.ns.svc:8081","voter":true},
{"id":"mqb-1","raftAddress":"mqb-1.mqb-headless.ns.svc:8081","voter":true,"matchIndex":118,"lag":2,"lastContactMs":7},
{"id":"mqb-2","raftAddress":"mqb-2.mqb-headless.ns.svc:8081","voter":false}],"refusedReplicationConnections":0}`

// adminServer serves handler on 127.0.0.1 and returns a pod at its
// address and an admin client for its port.
func adminServer(t *testing.T, handler http.HandlerFunc) (*corev1.Pod, HTTPClusterAdmin) {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	host, port, err := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "mqb-0"}, Status: corev1.PodStatus{PodIP: host}}
	return pod, HTTPClusterAdmin{Port: p}
}

func TestHTTPClusterAdminStatus(t *testing.T) {
	pod, h := adminServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/v1/cluster" || r.Header.Get("Authorization") != "Bearer "+testToken {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, clusterBody)
	})
	v, err := h.ClusterStatus(context.Background(), pod, testToken)
	if err != nil {
		t.Fatal(err)
	}
	if v.Role != "leader" || !v.Serving || v.Term != 4 || v.LeaderID != "mqb-0" || v.AppliedIndex != 117 || len(v.Members) != 3 {
		t.Fatalf("view %+v", v)
	}
	m := v.Members[1]
	if m.ID != "mqb-1" || !m.Voter || ptr.Deref(m.Lag, 99) != 2 || ptr.Deref(m.LastContactMilli, 99) != 7 {
		t.Errorf("member %+v", m)
	}
	if v.Members[2].Lag != nil || v.Members[2].Voter {
		t.Errorf("a member without a lag reads as %+v: unknown must stay unknown", v.Members[2])
	}
	if _, err := h.ClusterStatus(context.Background(), pod, "wrong"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("refused token: %v", err)
	}
	if _, err := h.ClusterStatus(context.Background(), &corev1.Pod{}, testToken); err == nil {
		t.Error("a pod without an IP was asked")
	}
}

// TestHTTPClusterAdminChanges: each change is the broker's request, and a
// refusal (409 from a member that does not lead) is an error naming it.
func TestHTTPClusterAdminChanges(t *testing.T) {
	var mu sync.Mutex
	var got []string
	pod, h := adminServer(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.EscapedPath()+" "+string(body))
		mu.Unlock()
		if strings.Contains(r.URL.Path, "refuse") {
			w.WriteHeader(http.StatusConflict)
			_, _ = io.WriteString(w, `{"error":"cluster: not the leader","leader":"mqb-1"}`)
			return
		}
		if strings.Contains(string(body), "old-build") {
			// The broker's answer to a member of an older build (broker/host).
			w.WriteHeader(http.StatusConflict)
			_ = json.NewEncoder(w).Encode(adminapi.Error{Error: "cluster: the member does not read the cluster's log entry format: old-build reads format 1 at most",
				Reason: adminapi.ReasonMemberFormat})
			return
		}
		_, _ = io.WriteString(w, clusterBody)
	})
	ctx := context.Background()
	m := config.ClusterMember{ID: "mqb-3", RaftAddress: "mqb-3.mqb-headless.ns.svc:8081", ClientAddress: "mqb-3.mqb-headless.ns.svc:1883"}
	if err := h.AddMember(ctx, pod, testToken, m); err != nil {
		t.Fatal(err)
	}
	if err := h.RemoveMember(ctx, pod, testToken, "mqb-4"); err != nil {
		t.Fatal(err)
	}
	if err := h.TransferLeadership(ctx, pod, testToken); err != nil {
		t.Fatal(err)
	}
	err := h.RemoveMember(ctx, pod, testToken, "refuse/../x")
	if err == nil || !strings.Contains(err.Error(), "409") || !strings.Contains(err.Error(), "not the leader") {
		t.Errorf("refusal: %v", err)
	}
	if _, refused := memberRefused(err); refused {
		t.Errorf("a member that does not lead reads as refusing the member: %v", err)
	}
	// A member of a build that cannot read the log is refused for good.
	err = h.AddMember(ctx, pod, testToken, config.ClusterMember{ID: "old-build", RaftAddress: "o:8081", ClientAddress: "o:1883"})
	if msg, refused := memberRefused(err); !refused || !strings.Contains(msg, "old-build reads format 1 at most") {
		t.Errorf("refusal of a member of an older build: %q, %v (%v)", msg, refused, err)
	}
	mu.Lock()
	defer mu.Unlock()
	var add map[string]string
	if err := json.Unmarshal([]byte(strings.SplitN(got[0], " ", 3)[2]), &add); err != nil ||
		add["id"] != m.ID || add["raftAddress"] != m.RaftAddress || add["clientAddress"] != m.ClientAddress {
		t.Errorf("POST body %q", got[0])
	}
	if !strings.HasPrefix(got[0], "POST /v1/cluster/members ") || got[1] != "DELETE /v1/cluster/members/mqb-4 " ||
		got[2] != "POST /v1/cluster/leadership-transfer " || got[3] != "DELETE /v1/cluster/members/refuse%2F..%2Fx " || len(got) != 5 {
		t.Errorf("requests %q", got)
	}
}

// TestHTTPClusterAdminHandover: the handover calls are the broker's
// requests (PUT /v1/cluster/handover with the role and its duration; a
// transfer naming the successor), and a refusal is an error.
func TestHTTPClusterAdminHandover(t *testing.T) {
	var mu sync.Mutex
	var got []string
	refuse := false
	pod, h := adminServer(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.Path+" "+string(body))
		no := refuse
		mu.Unlock()
		if no {
			w.WriteHeader(http.StatusConflict)
			_, _ = io.WriteString(w, `{"error":"replica: handover: this member already leads","leader":"mqb-1"}`)
			return
		}
		_, _ = io.WriteString(w, `{"role":"successor"}`)
	})
	ctx := context.Background()
	if err := h.PrepareHandover(ctx, pod, testToken, "successor", 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := h.TransferLeadershipTo(ctx, pod, testToken, "mqb-2"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	refuse = true
	mu.Unlock()
	err := h.PrepareHandover(ctx, pod, testToken, "successor", time.Second)
	if err == nil || !strings.Contains(err.Error(), "409") || !strings.Contains(err.Error(), "already leads") {
		t.Errorf("refusal: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{
		`PUT /v1/cluster/handover {"role":"successor","ttlMs":20000}`,
		`POST /v1/cluster/leadership-transfer {"to":"mqb-2"}`,
		`PUT /v1/cluster/handover {"role":"successor","ttlMs":1000}`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("requests %q, want %q", got, want)
	}
}
