package faultproxy

import (
	"errors"
	"fmt"
	"time"
)

// Mesh is a cluster's network: for N members, one Proxy per ordered pair
// (i, j), i != j, so that member i reaches member j at Addr(i, j) and the
// link i -> j can fail apart from j -> i and from every other. Member j's
// own address (the target of every link into j) is given to NewMesh and
// may move with SetTarget.
//
// Methods taking member indexes panic when an index is out of range or
// i == j, as indexing a slice does.
type Mesh struct {
	links [][]*Proxy // links[i][j], nil on the diagonal
}

// NewMesh starts the N*(N-1) links of a cluster whose member j listens
// for its peers at targets[j] (a loopback address). Every link listens on
// 127.0.0.1 with a port of its own. opts apply to every link; the seed of
// link (i, j) is the WithSeed seed plus i*N+j, so each draws its own
// reproducible sequence.
func NewMesh(targets []string, opts ...Option) (*Mesh, error) {
	n := len(targets)
	if n < 2 {
		return nil, fmt.Errorf("faultproxy: a mesh needs at least 2 members, got %d", n)
	}
	cfg := defaults()
	for _, o := range opts {
		o(&cfg)
	}
	m := &Mesh{links: make([][]*Proxy, n)}
	for i := range n {
		m.links[i] = make([]*Proxy, n)
		for j := range n {
			if i == j {
				continue
			}
			c := cfg
			c.seed = cfg.seed + uint64(i*n+j)
			p, err := newProxy("127.0.0.1:0", targets[j], c)
			if err != nil {
				return nil, errors.Join(fmt.Errorf("faultproxy: mesh link %d->%d: %w", i, j, err), m.Close())
			}
			m.links[i][j] = p
		}
	}
	return m, nil
}

// Size is the number of members.
func (m *Mesh) Size() int { return len(m.links) }

// Link is the proxy that carries member i's connections to member j.
func (m *Mesh) Link(i, j int) *Proxy {
	if i == j {
		panic(fmt.Sprintf("faultproxy: mesh link %d->%d", i, j))
	}
	return m.links[i][j]
}

// Addr is the address member i dials to reach member j.
func (m *Mesh) Addr(i, j int) string { return m.Link(i, j).Addr() }

// SetTarget moves member j (restarted on another port, say): every link
// into j sends new connections to addr.
func (m *Mesh) SetTarget(j int, addr string) error {
	for i := range m.links {
		if i != j {
			if err := m.Link(i, j).SetTarget(addr); err != nil {
				return err
			}
		}
	}
	return nil
}

// Isolate blackholes every link to and from member i.
func (m *Mesh) Isolate(i int) {
	others := make([]int, 0, len(m.links)-1)
	for j := range m.links {
		if j != i {
			others = append(others, j)
		}
	}
	m.Partition([]int{i}, others)
}

// Partition blackholes every link between a member of a and a member of
// b, both ways; links within a group, and those of members in neither,
// are untouched. It panics when a member is in both groups.
func (m *Mesh) Partition(a, b []int) {
	for _, i := range a {
		for _, j := range b {
			m.Link(i, j).Partition(Blackhole)
			m.Link(j, i).Partition(Blackhole)
		}
	}
}

// HealAll heals every link (delays stay as set).
func (m *Mesh) HealAll() {
	m.each(func(p *Proxy) { p.Heal() })
}

// SetDelay sets the one-way delay of every link.
func (m *Mesh) SetDelay(d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("faultproxy: negative delay %s", d)
	}
	m.each(func(p *Proxy) { _ = p.SetDelay(d) }) // d is valid
	return nil
}

// Close closes every link.
func (m *Mesh) Close() error {
	var err error
	m.each(func(p *Proxy) { err = errors.Join(err, p.Close()) })
	return err
}

func (m *Mesh) each(f func(*Proxy)) {
	for _, row := range m.links {
		for _, p := range row {
			if p != nil {
				f(p)
			}
		}
	}
}
