package nodeagent

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
)

// PodDNS stands in for cluster DNS where the agent's processes need it.
// In a cluster, POD.SERVICE.NAMESPACE.svc.cluster.local names a pod whose
// hostname is POD and subdomain SERVICE, a headless Service; here every
// pod is a process on 127.0.0.1 with its container ports remapped, so such
// a name cannot resolve to anything a process could dial. The agent
// rewrites instead the one place where bollard dials pods by name: the
// replication addresses of cluster.members in a mounted config file. Each
// member whose raftAddress (or existing cluster.dialAddresses entry) is
// such a name gets cluster.dialAddresses[id] = 127.0.0.1:<the local port
// of that pod's container port>. raftAddress itself is kept, so the Raft
// configuration holds the names a real cluster would hold.
type PodDNS struct {
	// Namespace of the pod whose files are rewritten: the namespace of
	// the short forms POD.SERVICE.
	Namespace string
	// Headless reports whether pod's name under ns/svc resolves: svc is a
	// headless Service and pod one of its pods (false: it would not).
	Headless func(ns, svc, pod string) bool
	// Port is the local port of a pod's container port.
	Port func(ns, pod string, port int32) (int, error)
	// Siblings: ClusterArgs also gives dial addresses to the StatefulSet
	// siblings of the listed members (ordinals 0..maxSiblings-1 under the
	// same headless Service), whether they exist yet or not. A member
	// started alone (a single node adopted as a cluster's member 0) dials
	// the members added later through it at their names, which only a
	// cluster's DNS resolves; the broker applies a dial address by member
	// ID to members added at run time, so the entries made now reach them
	// (their ports are allocated now and kept for their pods).
	Siblings bool
}

// maxSiblings is the most members a cluster has (the broker's bound, and
// its bound on dial addresses).
const maxSiblings = 7

// clusterDomain is the cluster's DNS domain (the kubelet's default).
const clusterDomain = "cluster.local"

// parsePodName splits a pod's DNS name under a headless Service, in any of
// the forms a resolver with the pod's search path accepts: POD.SERVICE,
// POD.SERVICE.NS, POD.SERVICE.NS.svc, POD.SERVICE.NS.svc.cluster.local
// (with or without a final dot). ns is the namespace of the short form.
func parsePodName(host, ns string) (pod, svc, namespace string, ok bool) {
	host = strings.TrimSuffix(host, ".")
	host = strings.TrimSuffix(host, "."+clusterDomain)
	labels := strings.Split(host, ".")
	switch {
	case len(labels) == 2:
		labels = append(labels, ns)
	case len(labels) == 4 && labels[3] == "svc":
		labels = labels[:3]
	case len(labels) != 3:
		return "", "", "", false
	}
	for _, l := range labels {
		if len(validation.IsDNS1123Label(l)) > 0 {
			return "", "", "", false
		}
	}
	return labels[0], labels[1], labels[2], true
}

// resolve maps host:port to 127.0.0.1:<local port> when host is a pod's
// name under a headless Service.
func (d *PodDNS) resolve(addr string) (string, bool, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", false, nil
	}
	pod, svc, ns, ok := parsePodName(host, d.Namespace)
	if !ok || !d.Headless(ns, svc, pod) {
		return "", false, nil
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return "", false, nil
	}
	local, err := d.Port(ns, pod, int32(p))
	if err != nil {
		return "", false, err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(local)), true, nil
}

// clusterDialAddresses sets cluster.dialAddresses in a broker config
// document, as PodDNS describes. It reports whether it changed the
// document.
func (d *PodDNS) clusterDialAddresses(doc *yaml.Node) (bool, error) {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return false, nil
	}
	cluster := mapValue(doc.Content[0], "cluster")
	members := mapValue(cluster, "members")
	if members == nil || members.Kind != yaml.SequenceNode {
		return false, nil
	}
	dial := mapValue(cluster, "dialAddresses")
	if dial != nil && dial.Kind != yaml.MappingNode {
		return false, nil // not a broker config this agent understands
	}
	changed := false
	for _, m := range members.Content {
		id, raft := scalarValue(m, "id"), scalarValue(m, "raftAddress")
		if id == "" {
			continue
		}
		src := raft
		if v := scalarValue(dial, id); v != "" {
			src = v
		}
		local, ok, err := d.resolve(src)
		if err != nil {
			return false, fmt.Errorf("nodeagent: cluster member %s at %s: %w", id, src, err)
		}
		if !ok {
			continue
		}
		if dial == nil {
			dial = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			cluster.Content = append(cluster.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "dialAddresses"}, dial)
		}
		changed = setMapValue(dial, id, local) || changed
	}
	return changed, nil
}

// mapValue is the value of key in mapping n (nil when absent or n is not
// a mapping).
func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func scalarValue(n *yaml.Node, key string) string {
	v := mapValue(n, key)
	if v == nil || v.Kind != yaml.ScalarNode {
		return ""
	}
	return v.Value
}

// setMapValue sets key to the string value in mapping n; false when it
// already had it.
func setMapValue(n *yaml.Node, key, value string) bool {
	if v := mapValue(n, key); v != nil {
		if v.Kind == yaml.ScalarNode && v.Value == value {
			return false
		}
		*v = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: value}
		return true
	}
	n.Content = append(n.Content,
		&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key},
		&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: value})
	return true
}

// Flags of the broker's cluster members (cmd/bollard).
const (
	membersFlag = "cluster-members"
	dialFlag    = "cluster-dial-addresses"
)

// ClusterArgs does for a member's command line what the config file
// rewrite does for its file: with --cluster-members id=raftAddress[=
// clientAddress],... among args, each member whose raftAddress (or entry
// of an existing --cluster-dial-addresses) is a pod's name gets an entry
// id=127.0.0.1:<local port> in --cluster-dial-addresses, which is
// appended, or rewritten in place. Other arguments are kept as they are.
func (d *PodDNS) ClusterArgs(args []string) ([]string, error) {
	_, members, ok := flagValue(args, membersFlag)
	if !ok {
		return args, nil
	}
	di, dialValue, hasDial := flagValue(args, dialFlag)
	dial, order := map[string]string{}, []string(nil)
	if hasDial {
		for _, item := range strings.Split(dialValue, ",") {
			id, addr, _ := strings.Cut(strings.TrimSpace(item), "=")
			dial[id] = addr
			order = append(order, id)
		}
	}
	changed := false
	for _, item := range strings.Split(members, ",") {
		parts := strings.Split(strings.TrimSpace(item), "=")
		if len(parts) < 2 || parts[0] == "" {
			continue // the broker refuses it, naming the flag
		}
		id, src := parts[0], parts[1]
		if v, ok := dial[id]; ok {
			src = v
		}
		local, ok, err := d.resolve(src)
		if err != nil {
			return nil, fmt.Errorf("nodeagent: cluster member %s at %s: %w", id, src, err)
		}
		if !ok || dial[id] == local {
			continue
		}
		if _, ok := dial[id]; !ok {
			order = append(order, id)
		}
		dial[id], changed = local, true
	}
	if d.Siblings {
		more, err := d.siblingDials(members, dial)
		if err != nil {
			return nil, err
		}
		order, changed = append(order, more...), changed || len(more) > 0
	}
	if !changed {
		return args, nil
	}
	entries := make([]string, 0, len(order))
	for _, id := range order {
		entries = append(entries, id+"="+dial[id])
	}
	out := append([]string(nil), args...)
	value := strings.Join(entries, ",")
	switch {
	case !hasDial:
		out = append(out, "--"+dialFlag+"="+value)
	case strings.Contains(out[di], "="):
		out[di] = "--" + dialFlag + "=" + value
	default: // "--cluster-dial-addresses" "value"
		out[di+1] = value
	}
	return out, nil
}

// siblingDials adds to dial the StatefulSet siblings of the members (see
// PodDNS.Siblings) that have no entry yet, up to maxSiblings entries in
// all, and returns their IDs in the order added.
func (d *PodDNS) siblingDials(members string, dial map[string]string) ([]string, error) {
	var added []string
	for _, item := range strings.Split(members, ",") {
		parts := strings.Split(strings.TrimSpace(item), "=")
		if len(parts) < 2 {
			continue
		}
		for _, sib := range siblings(parts[1]) {
			id, _, _ := strings.Cut(sib, ".")
			if _, ok := dial[id]; ok || len(dial) >= maxSiblings {
				continue
			}
			local, ok, err := d.resolve(sib)
			if err != nil {
				return nil, fmt.Errorf("nodeagent: cluster member %s at %s: %w", id, sib, err)
			}
			if ok {
				dial[id] = local
				added = append(added, id)
			}
		}
	}
	return added, nil
}

// siblings are the addresses of the StatefulSet pods beside the one at
// addr (POD.REST:port with POD = NAME-ORDINAL): NAME-0..NAME-6 at the same
// REST and port. None when addr names no such pod.
func siblings(addr string) []string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil
	}
	pod, rest, ok := strings.Cut(host, ".")
	i := strings.LastIndexByte(pod, '-')
	if !ok || i <= 0 {
		return nil
	}
	if _, err := strconv.Atoi(pod[i+1:]); err != nil {
		return nil
	}
	out := make([]string, 0, maxSiblings)
	for n := range maxSiblings {
		out = append(out, net.JoinHostPort(fmt.Sprintf("%s-%d.%s", pod[:i], n, rest), port))
	}
	return out
}

// flagValue finds -name=value, --name=value, or -name/--name followed by
// the value, as Go's flag package reads them (up to a "--").
func flagValue(args []string, name string) (int, string, bool) {
	for i, a := range args {
		if a == "--" {
			break
		}
		trimmed := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if trimmed == a {
			continue
		}
		if v, ok := strings.CutPrefix(trimmed, name+"="); ok {
			return i, v, true
		}
		if trimmed == name && i+1 < len(args) {
			return i, args[i+1], true
		}
	}
	return 0, "", false
}

// podDNS is the agent's PodDNS for the files of pods in namespace ns.
func (a *Agent) podDNS(ns string) *PodDNS {
	return &PodDNS{
		Namespace: ns,
		Siblings:  true,
		Headless:  a.headlessMember,
		Port: func(ns, pod string, port int32) (int, error) {
			return a.ports.get(fmt.Sprintf("%s/%d", podKey(ns, pod), port))
		},
	}
}

// headlessMember reports whether ns/svc is a headless Service that
// publishes not-ready addresses, and pod, if it exists yet, has the
// hostname, subdomain and labels that give it a name under it (a
// StatefulSet's pods do). The agent resolves a name once, when it writes
// the file, so it cannot follow readiness: it resolves only names that
// resolve whatever the pod's readiness (a Service without
// publishNotReadyAddresses would hide the members that are not ready,
// the followers of a cluster whose readiness only the leader passes). A
// pod not created yet is given the benefit of the doubt: its name
// resolves once it exists, and the address the agent hands out now is the
// one it will listen on.
func (a *Agent) headlessMember(ns, svc, pod string) bool {
	s, err := a.services.Services(ns).Get(svc)
	if err != nil || s.Spec.ClusterIP != corev1.ClusterIPNone || !s.Spec.PublishNotReadyAddresses {
		return false
	}
	p, err := a.pods.Pods(ns).Get(pod)
	if apierrors.IsNotFound(err) {
		return true
	}
	if err != nil {
		return false
	}
	return p.Spec.Hostname == pod && p.Spec.Subdomain == svc &&
		len(s.Spec.Selector) > 0 && labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(p.Labels))
}
