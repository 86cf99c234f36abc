package host

import (
	"strings"
	"testing"

	"github.com/bollard-io/bollard/broker/engine"
)

func TestMetricsExposition(t *testing.T) {
	f := newAdminFixture(t)
	f.ready.Store(true)
	code, body := f.do(t, "GET", "/metrics")
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	for _, line := range []string{
		"bollard_connections 3",
		`bollard_sessions{state="online"} 2`,
		`bollard_sessions{state="offline"} 5`,
		"bollard_queued_messages 42",
		"bollard_queued_bytes 4200",
		"bollard_retained_messages 7",
		`bollard_dropped_messages_total{reason="queue_full"} 4`,
		`bollard_dropped_messages_total{reason="store_full"} 0`,
		`bollard_dropped_messages_total{reason="custom_reason"} 1`,
		`bollard_messages_received_total{qos="2"} 30`,
		`bollard_messages_sent_total{qos="0"} 1`,
		"bollard_received_bytes_total 1000",
		"bollard_sent_bytes_total 2000",
		`bollard_store_commit_duration_seconds_bucket{le="0.001"} 5`,
		`bollard_store_commit_duration_seconds_bucket{le="+Inf"} 10`,
		"bollard_store_commit_duration_seconds_count 10",
		"bollard_config_generation 9",
		"bollard_config_pending_restart 1",
		"bollard_config_last_reload_failed 1",
		"bollard_config_refused_generation 10",
		`bollard_dropped_messages_total{reason="read_denied"} 0`,
		"bollard_ready 1",
		`bollard_config_reloads_total{result="applied"} 2`,
		`bollard_config_reloads_total{result="rejected"} 1`,
		`bollard_build_info{version="v1.2.3"} 1`,
		`bollard_limit_refusals_total{limit="topic"} 3`,
		`bollard_limit_refusals_total{limit="sessions"} 0`,
		`bollard_store_bytes{kind="used"} 900`,
		`bollard_store_bytes{kind="budget"} 1000`,
		`bollard_store_bytes{kind="volume_free"} 5000`,
		"bollard_store_pressure 1",
		"bollard_queue_fullest_ratio 0.42",
		`bollard_store_fsync_duration_seconds_bucket{le="0.001"} 3`,
		"bollard_store_fsync_duration_seconds_count 4",
		"go_goroutines ",
		"process_resident_memory_bytes ",
	} {
		if !strings.Contains(body, line) {
			t.Errorf("/metrics lacks %q", line)
		}
	}
}

func TestMetricsFollowState(t *testing.T) {
	f := newAdminFixture(t)
	f.reload = ReloadStatus{}
	_, body := f.do(t, "GET", "/metrics")
	for _, line := range []string{"bollard_ready 0", "bollard_config_pending_restart 0", "bollard_config_last_reload_failed 0"} {
		if !strings.Contains(body, line+"\n") {
			t.Errorf("/metrics lacks %q", line)
		}
	}
	f.eng.mu.Lock()
	f.eng.stats.Connections = 11
	f.eng.stats.Drops = nil
	f.eng.mu.Unlock()
	_, body = f.do(t, "GET", "/metrics")
	if !strings.Contains(body, "bollard_connections 11\n") || !strings.Contains(body, `bollard_dropped_messages_total{reason="queue_full"} 0`) {
		t.Errorf("scrape does not follow Stats():\n%s", body)
	}
}

func TestDropReasonsSortedAndComplete(t *testing.T) {
	got := dropReasons(map[string]uint64{"zzz": 1, engine.DropExpired: 2})
	if len(got) != len(knownDropReasons)+1 || got[len(got)-1] != "zzz" {
		t.Errorf("dropReasons = %v", got)
	}
	for i := 1; i < len(got); i++ {
		if got[i-1] >= got[i] {
			t.Errorf("not sorted: %v", got)
		}
	}
}

// TestMetricsTopQueues: admin.metricsTopQueues deepest queues are exported
// by client ID (none by default: TestAdminAuthOpenEndpoints looks for the
// fake engine's "b/c" on /metrics), a client that leaves them loses its
// series, and a client ID Prometheus refuses as a label value is skipped
// without failing the scrape.
func TestMetricsTopQueues(t *testing.T) {
	f := newAdminFixture(t)
	set := func(n int, top ...engine.QueueDepth) {
		f.eng.mu.Lock()
		f.eng.stats.MetricsTopQueues, f.eng.stats.TopQueues = n, top
		f.eng.mu.Unlock()
	}
	set(2, engine.QueueDepth{ClientID: "deep", Messages: 90, Bytes: 9000}, engine.QueueDepth{ClientID: "mid", Messages: 50, Bytes: 5000},
		engine.QueueDepth{ClientID: "third", Messages: 10, Bytes: 1000})
	code, body := f.do(t, "GET", "/metrics")
	for _, line := range []string{
		`bollard_queue_top_messages{client_id="deep"} 90`, `bollard_queue_top_bytes{client_id="deep"} 9000`,
		`bollard_queue_top_messages{client_id="mid"} 50`, `bollard_queue_top_bytes{client_id="mid"} 5000`,
	} {
		if !strings.Contains(body, line+"\n") {
			t.Errorf("/metrics (%d) lacks %s", code, line)
		}
	}
	if strings.Contains(body, "third") {
		t.Error("a third queue is exported with metricsTopQueues 2")
	}
	set(2, engine.QueueDepth{ClientID: "mid", Messages: 50, Bytes: 5000}, engine.QueueDepth{ClientID: "bad\xff", Messages: 7, Bytes: 70})
	code, body = f.do(t, "GET", "/metrics")
	if code != 200 || strings.Contains(body, `client_id="deep"`) || strings.Contains(body, `client_id="bad`) ||
		!strings.Contains(body, `bollard_queue_top_messages{client_id="mid"} 50`) {
		t.Errorf("after deep left and an invalid client ID came: %d\n%s", code, grepLines(body, "bollard_queue_top"))
	}
	set(0, engine.QueueDepth{ClientID: "mid", Messages: 50, Bytes: 5000})
	if _, body = f.do(t, "GET", "/metrics"); strings.Contains(body, `client_id="mid"`) {
		t.Error("metricsTopQueues 0 exports a client ID")
	}
}

func grepLines(body, prefix string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
