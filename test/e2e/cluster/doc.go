// Package cluster starts the e2e tier's Kubernetes cluster on this machine:
// kube-apiserver and etcd (controller-runtime envtest, binaries from
// hack/testbin.sh, the CRDs of config/crd/bases), kube-controller-manager
// and kube-scheduler as child processes with a system:masters kubeconfig,
// the node agent of package nodeagent in-process, and optionally the
// Bollard operator's manager in-process. Everything listens on 127.0.0.1;
// Stop ends it all (child process groups included) and removes the work
// directory.
//
// Both the e2e tests (one cluster per test binary, from TestMain) and
// `make dev` use it.
package cluster
