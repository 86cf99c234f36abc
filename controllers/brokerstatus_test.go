package controllers

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/bollard-io/bollard/broker/adminapi"
)

// statusBody is a /v1/status body as broker/host writes it (fields the
// operator ignores included).
const statusBody = `{"version":"v0.1.0","configGeneration":7,"pendingRestart":false,"ready":true,
"draining":false,"startedAt":"2026-01-01T00:00:00Z","uptimeSeconds":12.5,"connections":3,
"sessionsOnline":2,"sessionsOffline":5,"queuedMessages":40,"queuedBytes":4096,
"lastReloadError":"config: queues.maxQueuedMessages: must be at least 1, got 0",
"storage":{"usedBytes":950,"budgetBytes":1000,"messageBytes":400,"diskBytes":950,"compactionDebtBytes":0,
"volumeFreeBytes":123456,"volumeSizeBytes":999999,"minVolumeFreeBytes":67108864,"pressure":true},
"countedAt":"2026-01-01T00:00:12Z","fullestQueueRatio":0.25,
"topQueues":[{"clientID":"sensor-7","messages":30,"bytes":3000},{"clientID":"b","messages":10,"bytes":1096,"policy":"telemetry"}],
"recentDrops":{"windowSeconds":300,"byReason":{"queue_full":4}}}`

// olderStatusBody is what a broker from before status.stats answers.
const olderStatusBody = `{"version":"v0.0.9","configGeneration":7,"ready":true,"sessionsOnline":2,"sessionsOffline":5,"queuedMessages":40}`

const testToken = "0123456789abcdef0123456789abcdef"

// TestHTTPBrokerStatusReader: the reader presents the admin token and
// reads the status; a refused token is named in the error.
func TestHTTPBrokerStatusReader(t *testing.T) {
	cases := map[string]struct {
		handler http.HandlerFunc
		wantErr string
		want    BrokerStatus
	}{
		"ok": {
			handler: func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodGet || r.URL.Path != "/v1/status" {
					http.NotFound(w, r)
					return
				}
				if r.Header.Get("Authorization") != "Bearer "+testToken {
					http.Error(w, "no token", http.StatusUnauthorized)
					return
				}
				_, _ = w.Write([]byte(statusBody))
			},
			want: BrokerStatus{Version: "v0.1.0", ConfigGeneration: 7, SessionsOnline: 2, SessionsOffline: 5, QueuedMessages: 40,
				LastReloadError: "config: queues.maxQueuedMessages: must be at least 1, got 0",
				Storage:         &BrokerStorage{Used: 950, Budget: 1000, VolumeFree: 123456, Pressure: true},
				QueuedBytes:     ptr.To[int64](4096), FullestQueueRatio: ptr.To(0.25),
				TopQueues: []BrokerQueue{{ClientID: "sensor-7", Messages: 30, Bytes: 3000},
					{ClientID: "b", Messages: 10, Bytes: 1096, Policy: "telemetry"}},
				RecentDrops: &BrokerDrops{WindowSeconds: 300, ByReason: map[string]uint64{"queue_full": 4}}},
		},
		// What an older broker does not report stays unknown (nil), not 0.
		"older broker": {
			handler: func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(olderStatusBody)) },
			want:    BrokerStatus{Version: "v0.0.9", ConfigGeneration: 7, SessionsOnline: 2, SessionsOffline: 5, QueuedMessages: 40},
		},
		// A cluster member says whether it serves (the rest of its view is
		// read too, as GET /v1/cluster has it).
		"cluster member": {
			handler: func(w http.ResponseWriter, _ *http.Request) {
				_, _ = w.Write([]byte(`{"version":"v1","configGeneration":7,"sessionsOnline":0,"sessionsOffline":0,"queuedMessages":0,
"cluster":{"id":"b-1","role":"follower","serving":false,"term":4,"leader":"b-0","lastLogIndex":9,"lastLogTerm":4,"commitIndex":9,
"appliedIndex":9,"lastSnapshotIndex":0,"members":[],"refusedReplicationConnections":0}}`))
			},
			want: BrokerStatus{Version: "v1", ConfigGeneration: 7, Cluster: &adminapi.ClusterStatus{ID: "b-1", Role: adminapi.RoleFollower,
				Term: 4, LeaderID: "b-0", LastLogIndex: 9, LastLogTerm: 4, CommitIndex: 9, AppliedIndex: 9, Members: []adminapi.ClusterMember{}}},
		},
		"http error": {
			handler: func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "draining", http.StatusServiceUnavailable) },
			wantErr: "503",
		},
		"token refused": {
			handler: func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "no", http.StatusUnauthorized) },
			wantErr: "refused the admin token",
		},
		"not json": {
			handler: func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("<html>")) },
			wantErr: "decoding",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			host, port, err := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			p, _ := strconv.Atoi(port)
			pod := &corev1.Pod{Status: corev1.PodStatus{PodIP: host}}
			got, err := HTTPBrokerStatusReader{Port: p}.BrokerStatus(context.Background(), pod, testToken)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	if _, err := (HTTPBrokerStatusReader{}).BrokerStatus(context.Background(), &corev1.Pod{}, testToken); err == nil {
		t.Error("a pod without an IP was queried")
	}
}

// TestReportOfNonServingMember: a member that does not serve (a handover's
// successor, ready before it leads) reports its configuration generation
// but no figures; a serving member and a single node report theirs.
func TestReportOfNonServingMember(t *testing.T) {
	st := BrokerStatus{ConfigGeneration: 7, SessionsOnline: 0}
	if r := report("b-0", statusRead{st: st}); r.NoFigures {
		t.Error("a single node's figures were dropped")
	}
	st.Cluster = &adminapi.ClusterStatus{Role: adminapi.RoleLeader, Serving: true}
	if r := report("b-0", statusRead{st: st}); r.NoFigures {
		t.Error("the serving leader's figures were dropped")
	}
	st.Cluster = &adminapi.ClusterStatus{Role: adminapi.RoleFollower}
	if r := report("b-1", statusRead{st: st}); !r.NoFigures || r.ConfigGeneration != 7 {
		t.Errorf("a follower's report: %+v, want its generation and no figures", r)
	}
}
