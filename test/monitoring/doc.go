// Package monitoring tests what Bollard ships for monitoring against the
// broker itself: the Grafana dashboard (config/grafana) and the alert rules
// (config/prometheus, generated from controllers/resources/alerts.go) may
// name only metrics a running broker exports, read from a real scrape of a
// broker started by the test; the operator reads the broker's /v1/status
// as the broker writes it. With the external tag, promtool (Debian's
// prometheus package, installed by hack/install-test-deps.sh) checks the
// rules and the dashboard's queries and runs the rules' unit tests
// (testdata/rules_test.yaml).
package monitoring
