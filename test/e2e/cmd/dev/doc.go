// Command dev runs Bollard on this machine without a Kubernetes cluster
// (`make dev`): it starts the e2e cluster of package cluster (kube-apiserver,
// etcd, kube-controller-manager, kube-scheduler, the operator in-process,
// and the node agent running broker pods as local bollard processes),
// applies a sample MQTTBroker, waits until it is Ready, and prints how to
// connect with mosquitto clients and kubectl. Ctrl-C stops everything.
package main
