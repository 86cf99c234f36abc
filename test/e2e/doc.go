// Package e2e holds the end-to-end scenarios: one cluster per test binary
// (TestMain starts it with package cluster: real kube-apiserver, etcd,
// kube-controller-manager, kube-scheduler, the operator in-process, and the
// node agent running broker pods as local bollard processes), then tests
// that apply manifests and talk to the running brokers with real MQTT
// clients.
package e2e
