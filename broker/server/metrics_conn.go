package server

import "github.com/prometheus/client_golang/prometheus"

// Metrics of the connection protections (recover.go, authlimit.go): kept
// in a collector of their own so metrics.go stays as it is.
var (
	descConnPanics = prometheus.NewDesc("bollard_connection_panics_total",
		"Panics recovered in a client connection; each closed that connection only.", nil, nil)
)

// connCollector exports the connection protection counters.
type connCollector struct{ cfg AdminConfig }

func (c connCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descConnPanics
}

func (c connCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.cfg.Backend.Stats()
	ch <- prometheus.MustNewConstMetric(descConnPanics, prometheus.CounterValue, float64(st.ConnectionPanics))
}
