// Package e2e holds the end-to-end scenarios: one cluster per test binary
// (TestMain starts it with package cluster: real kube-apiserver, etcd,
// kube-controller-manager, kube-scheduler, the operator in-process, and the
// node agent running broker pods as local bollard processes), then tests
// that apply manifests and talk to the running brokers with real MQTT
// clients. Most tests dial a pod's remapped port; the replication
// scenarios (replication_test.go: a 3-member broker's leader killed, its
// pod deleted, a rolling upgrade, failovers with the operator stopped)
// dial only the client Service, which the node agent carries to the ready
// pods as kube-proxy would, and check test/history/workload's history and
// the goals of issue 16 on each client's outages.
//
// Run it with `go test -race -shuffle=on -tags e2e ./test/e2e/... -v` (the control
// plane binaries come from hack/testbin.sh, or KUBEBUILDER_ASSETS; without
// them the binary fails, it never skips). With -v, scenarios 2 and 3 log
// their counts: messages sent and acknowledged per publisher, and per
// subscriber what arrived, what was lost, duplicates and order. Set
// BOLLARD_E2E_KEEP=1 to keep the work directory with the logs of every
// component and broker pod (it is kept anyway when a test fails).
package e2e
