package host

import (
	"strings"
	"testing"
)

func TestConnMetricsExposition(t *testing.T) {
	f := newAdminFixture(t)
	f.eng.mu.Lock()
	f.eng.stats.ConnectionPanics = 2
	f.eng.stats.LoginRefusedBusy = 3
	f.eng.stats.LoginRefusedBackoff = 4
	f.eng.stats.LoginFailures = 5
	f.eng.stats.LoginChecksInFlight = 1
	f.eng.stats.LoginBackoffAddresses = 6
	f.eng.stats.ConnectionErrors = map[string]uint64{"connect_timeout": 7, "protocol_error": 0}
	f.eng.mu.Unlock()
	_, body := f.do(t, "GET", "/metrics")
	for _, line := range []string{
		"bollard_connection_panics_total 2\n",
		`bollard_login_refused_total{reason="busy"} 3` + "\n",
		`bollard_login_refused_total{reason="backoff"} 4` + "\n",
		"bollard_login_failures_total 5\n",
		"bollard_login_checks_in_flight 1\n",
		"bollard_login_backoff_addresses 6\n",
		"bollard_admin_connections_refused_total ",
		`bollard_connection_errors_total{reason="connect_timeout"} 7` + "\n",
		`bollard_connection_errors_total{reason="protocol_error"} 0` + "\n",
	} {
		if !strings.Contains(body, line) {
			t.Errorf("/metrics lacks %q", line)
		}
	}
}
