// Package nodeagent is the kubelet of the e2e cluster: a node agent that
// runs in-process beside the test and turns Pods scheduled to its Node into
// real local processes.
//
// It registers a Node (with capacity, so the scheduler places pods on it),
// renews the Node's Lease in kube-node-lease and keeps its Ready condition
// True; provisions a hostPath PersistentVolume (a directory under the work
// dir) for every pending PersistentVolumeClaim and lets the PV controller
// bind it; and for each Pod on its Node runs the container's command as a
// local process (the bollard binary built from the checkout): ConfigMap,
// Secret, emptyDir and PVC volumes become local directories, container paths
// in args and YAML config files are rewritten to them, and container ports
// are remapped to free ports on 127.0.0.1. The Pod reports podIP 127.0.0.1
// and the port map in the PortsAnnotation, so tests connect to the real
// broker.
//
// Readiness comes from the Pod's own readiness probe (HTTP GET against the
// remapped port), restarts follow the restart policy and are counted, and a
// deleted Pod gets SIGTERM, its grace period, then SIGKILL, before the agent
// removes it as the kubelet would. Tests may SIGKILL a Pod's process on
// demand (Agent.KillPod).
//
// Deliberate differences from a kubelet, for test speed: probes run at most
// every MaxProbePeriod (1 s by default) whatever their periodSeconds, the
// crash-loop back-off starts at 1 s and is capped at 30 s, and liveness
// probes are not run.
package nodeagent
