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
