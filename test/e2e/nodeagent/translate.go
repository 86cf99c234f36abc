package nodeagent

import (
	"bytes"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Mount maps a path inside the container to a local directory.
type Mount struct {
	ContainerPath string
	LocalPath     string
}

// Rewriter turns container-side strings (paths under volume mounts, listen
// addresses on container ports) into their local equivalents. It is pure:
// the same inputs always give the same output, so a config file rewritten
// again after a ConfigMap change keeps the same addresses and paths.
type Rewriter struct {
	mounts []Mount
	ports  map[int32]int
	dns    *PodDNS
}

// NewRewriter returns a Rewriter for the given mounts and container port ->
// local port map.
func NewRewriter(mounts []Mount, ports map[int32]int) *Rewriter {
	m := append([]Mount(nil), mounts...)
	// Longest container path first, so /var/lib/bollard/x wins over /var/lib.
	sort.SliceStable(m, func(i, j int) bool { return len(m[i].ContainerPath) > len(m[j].ContainerPath) })
	return &Rewriter{mounts: m, ports: ports}
}

// String rewrites one argument or config value: a listen address on a
// container port becomes 127.0.0.1:<local port>, a path under a mount
// becomes the local path, and a --flag=value has its value rewritten.
func (r *Rewriter) String(s string) string {
	if strings.HasPrefix(s, "-") {
		if name, value, ok := strings.Cut(s, "="); ok {
			return name + "=" + r.String(value)
		}
		return s
	}
	if a, ok := r.address(s); ok {
		return a
	}
	return r.path(s)
}

// address rewrites host:port when port is a container port and host is
// empty, a wildcard or loopback.
func (r *Rewriter) address(s string) (string, bool) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", false
	}
	switch host {
	case "", "0.0.0.0", "::", "127.0.0.1", "localhost", "::1":
	default:
		return "", false
	}
	p, err := strconv.ParseInt(port, 10, 32)
	if err != nil {
		return "", false
	}
	local, ok := r.ports[int32(p)]
	if !ok {
		return "", false
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(local)), true
}

// WithPodDNS returns a copy of r that also resolves pod names in broker
// config files (see PodDNS).
func (r *Rewriter) WithPodDNS(d *PodDNS) *Rewriter {
	c := *r
	c.dns = d
	return &c
}

func (r *Rewriter) path(s string) string {
	for _, m := range r.mounts {
		if s == m.ContainerPath {
			return m.LocalPath
		}
		if strings.HasPrefix(s, strings.TrimSuffix(m.ContainerPath, "/")+"/") {
			return m.LocalPath + s[len(strings.TrimSuffix(m.ContainerPath, "/")):]
		}
	}
	return s
}

// YAML rewrites every string scalar of a YAML (or JSON) document with
// String, keeping its structure, and with a PodDNS sets the dial
// addresses of a broker config's cluster members. Documents that do not
// parse are returned unchanged: not every mounted file is configuration.
// The error is PodDNS's (a port it could not allocate).
func (r *Rewriter) YAML(b []byte) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil || doc.Kind == 0 {
		return b, nil
	}
	changed := false
	walkScalars(&doc, func(n *yaml.Node) {
		if n.Tag != "!!str" {
			return
		}
		if v := r.String(n.Value); v != n.Value {
			n.Value = v
			changed = true
		}
	})
	if r.dns != nil {
		dialed, err := r.dns.clusterDialAddresses(&doc)
		if err != nil {
			return nil, err
		}
		changed = changed || dialed
	}
	if !changed {
		return b, nil
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return b, nil
	}
	if err := enc.Close(); err != nil {
		return b, nil
	}
	return out.Bytes(), nil
}

func walkScalars(n *yaml.Node, fn func(*yaml.Node)) {
	if n.Kind == yaml.ScalarNode {
		fn(n)
		return
	}
	for i, c := range n.Content {
		// Mapping keys are names, not values.
		if n.Kind == yaml.MappingNode && i%2 == 0 {
			continue
		}
		walkScalars(c, fn)
	}
}

// isConfigFile reports whether a mounted file is rewritten as YAML.
func isConfigFile(name string) bool {
	for _, ext := range []string{".yaml", ".yml", ".json", ".conf"} {
		if strings.HasSuffix(name, ext) {
			return true
		}
	}
	return false
}

// Expand replaces $(NAME) references with values from env, as the kubelet
// does for command and args; $$ escapes a dollar and unknown references
// are kept verbatim.
func Expand(s string, env map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+end]
			if v, ok := env[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+end+1])
			}
			i += end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

// PortKey is the key of a container port in the PortsAnnotation: its name,
// or its number when it has none.
func PortKey(name string, port int32) string {
	if name != "" {
		return name
	}
	return fmt.Sprint(port)
}
