package host

import (
	"maps"
	"slices"

	"github.com/bollard-io/bollard/broker/engine"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics of the connection protections (recover.go, authlimit.go),
// exported by the broker collector (metrics.go).
var (
	descConnPanics = prometheus.NewDesc("bollard_connection_panics_total",
		"Panics recovered in a client connection; each closed that connection only.", nil, nil)
	descLoginRefused = prometheus.NewDesc("bollard_login_refused_total",
		"CONNECTs refused before their password check, by reason (busy: no check slot within login.checkWait; backoff: the source address failed to log in recently).",
		[]string{"reason"}, nil)
	descLoginFailures = prometheus.NewDesc("bollard_login_failures_total",
		"Failed password checks (bad username or password).", nil, nil)
	descLoginInFlight = prometheus.NewDesc("bollard_login_checks_in_flight",
		"Password checks (bcrypt comparisons) running now; at most login.maxConcurrentChecks.", nil, nil)
	descAdminConnsRefused = prometheus.NewDesc("bollard_admin_connections_refused_total",
		"Admin endpoint connections closed at once because 256 were open (slow clients); per process.", nil, nil)
	descConnErrors = prometheus.NewDesc("bollard_connection_errors_total",
		"Client connections that ended in error, by reason: connect_timeout (no CONNECT within limits.connectTimeout), connect_invalid (the first packet is not a CONNECT or does not decode), connect_failed (reading it failed otherwise; on a TLS listener, the handshake), protocol_error (a packet after CONNECT does not decode or breaks the protocol), keep_alive_timeout (a client silent for 1.5 x its keep alive). Clients that close or reset their connection are not counted.",
		[]string{"reason"}, nil)
	descLoginBackoff = prometheus.NewDesc("bollard_login_backoff_addresses",
		"Source addresses remembered for the failed-login back-off; at most login.backoffAddresses.", nil, nil)
)

// connDescs are the descriptors of the connection protection metrics.
var connDescs = []*prometheus.Desc{descConnPanics, descLoginRefused, descLoginFailures, descLoginInFlight,
	descLoginBackoff, descAdminConnsRefused, descConnErrors}

// collectConn exports the connection protection counters from st, the
// Stats the broker collector already read (one Stats per scrape).
func collectConn(ch chan<- prometheus.Metric, st engine.Stats) {
	ch <- prometheus.MustNewConstMetric(descConnPanics, prometheus.CounterValue, float64(st.ConnectionPanics))
	ch <- prometheus.MustNewConstMetric(descLoginRefused, prometheus.CounterValue, float64(st.LoginRefusedBusy), "busy")
	ch <- prometheus.MustNewConstMetric(descLoginRefused, prometheus.CounterValue, float64(st.LoginRefusedBackoff), "backoff")
	ch <- prometheus.MustNewConstMetric(descLoginFailures, prometheus.CounterValue, float64(st.LoginFailures))
	ch <- prometheus.MustNewConstMetric(descLoginInFlight, prometheus.GaugeValue, float64(st.LoginChecksInFlight))
	ch <- prometheus.MustNewConstMetric(descLoginBackoff, prometheus.GaugeValue, float64(st.LoginBackoffAddresses))
	ch <- prometheus.MustNewConstMetric(descAdminConnsRefused, prometheus.CounterValue, float64(adminConnsRefused.Load()))
	for _, reason := range slices.Sorted(maps.Keys(st.ConnectionErrors)) {
		ch <- prometheus.MustNewConstMetric(descConnErrors, prometheus.CounterValue, float64(st.ConnectionErrors[reason]), reason)
	}
}
