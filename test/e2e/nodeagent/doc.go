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
// are remapped to free ports on 127.0.0.1. The Pod reports the port map in
// the PortsAnnotation, so tests connect to the real broker, and a stand-in
// podIP from PodIPRange (the apiserver refuses loopback addresses in
// EndpointSlices; the process itself sees 127.0.0.1 as its status.podIP).
//
// Readiness comes from the Pod's own readiness probe (HTTP GET against the
// remapped port), restarts follow the restart policy and are counted, and a
// deleted Pod gets SIGTERM, its grace period, then SIGKILL, before the agent
// removes it as the kubelet would. Tests may SIGKILL a Pod's process on
// demand (Agent.KillPod).
//
// Like kube-proxy, it carries Services: for every TCP port of every Service
// with a cluster IP (ClusterIP, NodePort, LoadBalancer; not headless nor
// ExternalName) it listens on its own port of 127.0.0.1, stable for the
// life of the agent (Agent.ServiceAddr finds it by the Service port's name
// or number), and joins each accepted connection to one endpoint chosen
// at random among the Service's usable endpoints at that moment. It
// watches EndpointSlices as kube-proxy does and uses the same rule: the
// ready endpoints, or when there is none the serving and terminating ones.
// A pod endpoint is reached at the local port of its container port;
// other endpoints only at a loopback address. Changing endpoints affects
// new connections only; those in progress keep their endpoint until one
// side closes. With no usable endpoint, a connection is reset at once, as
// kube-proxy's REJECT rule does; so is one whose endpoint refuses, or one
// past Options.MaxProxyConns. Agent.ServiceStats counts each case.
//
// Cluster DNS is not served: processes on 127.0.0.1 with remapped ports
// could not use it. The one place where a bollard process dials pods by
// name, the replication addresses of its cluster members, is resolved
// where the agent translates the pod (see PodDNS): a member whose
// raftAddress is POD.SERVICE[.NS[.svc[.cluster.local]]] under a headless
// Service that publishes not-ready addresses gets a dial address
// 127.0.0.1:<that pod's local port>, in --cluster-dial-addresses when the
// members come from --cluster-members (as the operator renders them), or
// in cluster.dialAddresses when they come from a config file. raftAddress
// keeps the name, so the Raft configuration holds what a real cluster
// holds. The raft port must be a declared container port (the bind
// address is remapped like any listen address). A member added at run
// time (POST /v1/cluster/members) that is not in a running member's
// command line or file has no dial address there: its name does not
// resolve for that member until it restarts.
//
// Deliberate differences from a kubelet, for test speed: probes run at most
// every MaxProbePeriod (1 s by default) whatever their periodSeconds, the
// crash-loop back-off starts at 1 s and is capped at 30 s, and liveness
// probes are not run.
package nodeagent
