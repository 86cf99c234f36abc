// Package load is Bollard's loopback load generator: a lean MQTT 5.0
// client built on broker/packet, broker launchers (bollard built from this
// checkout, Debian's mosquitto, or the engine in process), and the
// benchmark scenarios (publish/subscribe throughput and latency, fan-out,
// few messages in flight: publisher windows 1, 20 and 100 at QoS 0, 1 and
// 2, 1 -> 1 and 4 x 4, clean and persistent online subscribers; offline
// ingest, drain, restart and memory, a connect storm of persistent
// clients), each run against Bollard and mosquitto side by side,
// alternating, and reported as a table of both figures and their ratio;
// optionally with a third column, an earlier Bollard build
// (LOAD_BASELINE_BIN), for before/after ratios from the same run; and a
// fleet test that starts a bollard process on a store of a million offline
// sessions (WriteFleetStore, TestFleetSessions).
//
// Every load loop is bounded twice, by a message count and by a deadline,
// and stops by itself. Everything listens and dials on 127.0.0.1 only.
//
// The scenarios run from tests: a tiny smoke run is part of `go test
// ./...` (against the engine in process, and also mosquitto when it is
// installed and the build has the external tag, as in `make test`) so the
// generator cannot rot; the full comparison is behind the loadbench build
// tag and runs from `make bench` (the fleet test on its own: it writes a
// million sessions). Broker code never imports this package.
package load
