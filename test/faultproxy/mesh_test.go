package faultproxy_test

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bollard-io/bollard/test/faultproxy"
)

// newMesh starts n tagged servers ("0", "1", ...) and a mesh between them.
func newMesh(t *testing.T, n int) (*faultproxy.Mesh, []*server) {
	t.Helper()
	if _, seen := leakChecked.LoadOrStore(t, true); !seen {
		t.Cleanup(func() { noLeaks(t); leakChecked.Delete(t) })
	}
	srvs := make([]*server, n)
	targets := make([]string, n)
	for i := range n {
		srvs[i] = tagged(t, fmt.Sprint(i))
		targets[i] = srvs[i].addr()
	}
	m, err := faultproxy.NewMesh(targets)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	return m, srvs
}

// links reports, for every ordered pair, whether a new connection from i
// reaches j ("i>j" when it does, "i/j" when it stays silent or is reset).
func links(t *testing.T, m *faultproxy.Mesh) string {
	t.Helper()
	var out []string
	for i := range m.Size() {
		for j := range m.Size() {
			if i == j {
				continue
			}
			c, err := net.DialTimeout("tcp", m.Addr(i, j), 5*time.Second)
			if errors.Is(err, syscall.ECONNRESET) {
				out = append(out, fmt.Sprintf("%d/%d", i, j))
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			buf := make([]byte, 1)
			n, _ := c.Read(buf)
			_ = c.Close()
			switch {
			case n == 1 && buf[0] == byte('0'+j):
				out = append(out, fmt.Sprintf("%d>%d", i, j))
			case n == 0:
				out = append(out, fmt.Sprintf("%d/%d", i, j))
			default:
				t.Fatalf("link %d->%d reached server %q", i, j, buf[:n])
			}
		}
	}
	return strings.Join(out, " ")
}

func TestMesh(t *testing.T) {
	m, _ := newMesh(t, 3)
	const all = "0>1 0>2 1>0 1>2 2>0 2>1"
	if got := links(t, m); got != all {
		t.Fatalf("links = %s", got)
	}
	m.Isolate(0)
	if got, want := links(t, m), "0/1 0/2 1/0 1>2 2/0 2>1"; got != want {
		t.Fatalf("isolated 0: %s, want %s", got, want)
	}
	m.HealAll()
	if got := links(t, m); got != all {
		t.Fatalf("healed: %s", got)
	}
	m.Partition([]int{0, 1}, []int{2})
	if got, want := links(t, m), "0>1 0/2 1>0 1/2 2/0 2/1"; got != want {
		t.Fatalf("{0,1} | {2}: %s, want %s", got, want)
	}
	m.HealAll()
	if got := links(t, m); got != all {
		t.Fatalf("healed: %s", got)
	}
	// One way only, through the link itself.
	m.Link(1, 2).Partition(faultproxy.Reset)
	if got, want := links(t, m), "0>1 0>2 1>0 1/2 2>0 2>1"; got != want {
		t.Fatalf("1->2 reset: %s, want %s", got, want)
	}
}

// A member that moves (restarted on another port) is reached through the
// same link addresses.
func TestMeshSetTarget(t *testing.T) {
	m, _ := newMesh(t, 3)
	moved := tagged(t, "2")
	if err := m.SetTarget(2, moved.addr()); err != nil {
		t.Fatal(err)
	}
	before := moved.accepted.Load()
	if got := links(t, m); got != "0>1 0>2 1>0 1>2 2>0 2>1" {
		t.Fatalf("links = %s", got)
	}
	if n := moved.accepted.Load() - before; n != 2 {
		t.Fatalf("the moved member got %d connections, want 2 (from 0 and 1)", n)
	}
	if err := m.SetTarget(1, "10.0.0.1:7000"); err == nil {
		t.Fatal("SetTarget accepted a non-loopback address")
	}
	if err := m.SetDelay(-time.Second); err == nil {
		t.Fatal("SetDelay accepted a negative delay")
	}
}

func TestMeshRefusesBadInput(t *testing.T) {
	srv := echo(t)
	if _, err := faultproxy.NewMesh([]string{srv.addr()}); err == nil {
		t.Error("NewMesh accepted one member")
	}
	// The third target is refused after the first links were started:
	// they are closed (the leak check below).
	if _, err := faultproxy.NewMesh([]string{srv.addr(), srv.addr(), "192.168.0.1:80"}); err == nil {
		t.Error("NewMesh accepted a non-loopback target")
	}
	noLeaks(t)
	m, _ := newMesh(t, 2)
	for name, f := range map[string]func(){
		"link to itself":  func() { m.Addr(1, 1) },
		"out of range":    func() { m.Addr(0, 2) },
		"in both groups":  func() { m.Partition([]int{0, 1}, []int{1}) },
		"isolate a ghost": func() { m.Isolate(5) },
		"negative member": func() { m.Link(-1, 0) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f()
		})
	}
}
