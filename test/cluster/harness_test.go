// Package cluster_test runs replicated Bollard clusters of real processes
// on 127.0.0.1 and checks what replication promises: nothing acknowledged
// is lost when members die, QoS 2 is delivered once, clients find the
// leader through any member.
package cluster_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/bollard-io/bollard/test/mqtttest"
	"github.com/bollard-io/bollard/test/poll"
)

var bollardBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "bollard-cluster-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bollardBin = filepath.Join(dir, "bollard")
	args := []string{"build", "-o", bollardBin}
	if raceBuild {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "github.com/bollard-io/bollard/cmd/bollard")...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "building cmd/bollard: %v\n", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// member is one bollard process of a test cluster.
type member struct {
	id                     string
	mqtt, admin, raft, dir string
	cfgFile                string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

// testCluster is n members on loopback ports.
type testCluster struct {
	t       *testing.T
	members []*member
	secret  string
	// heartbeat is the members' heartbeat (and election) timeout.
	heartbeat time.Duration
	// dial, when set, gives the address member i dials member j at.
	dial func(i, j int) string
}

func freePorts(t *testing.T, n int) []string {
	t.Helper()
	var lns []net.Listener
	var out []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().String())
	}
	for _, ln := range lns {
		_ = ln.Close()
	}
	return out
}

func newCluster(t *testing.T, n int) *testCluster {
	t.Helper()
	c := &testCluster{t: t, heartbeat: 500 * time.Millisecond}
	base := t.TempDir()
	c.secret = filepath.Join(base, "secret")
	if err := os.WriteFile(c.secret, []byte(strings.Repeat("k", 48)), 0o600); err != nil {
		t.Fatal(err)
	}
	ports := freePorts(t, 3*n)
	for i := range n {
		m := &member{id: fmt.Sprintf("b-%d", i), mqtt: ports[3*i], admin: ports[3*i+1], raft: ports[3*i+2],
			dir: filepath.Join(base, fmt.Sprintf("b-%d", i))}
		m.cfgFile = filepath.Join(base, m.id+".yaml")
		c.members = append(c.members, m)
	}
	t.Cleanup(func() {
		for _, m := range c.members {
			m.killNow()
		}
	})
	return c
}

func (c *testCluster) writeConfig(i int) {
	m := c.members[i]
	var b strings.Builder
	fmt.Fprintf(&b, "listeners:\n  mqtt:\n    address: %s\nadmin:\n  address: %s\ndataDir: %s\n", m.mqtt, m.admin, m.dir)
	fmt.Fprintf(&b, "auth:\n  allowAnonymous: true\ndrainTimeout: 10s\n")
	fmt.Fprintf(&b, "cluster:\n  memberID: %s\n  bind: %s\n  bootstrap: true\n  secretFile: %s\n", m.id, m.raft, c.secret)
	fmt.Fprintf(&b, "  heartbeatTimeout: %s\n  electionTimeout: %s\n  leaderLeaseTimeout: %s\n", c.heartbeat, c.heartbeat, c.heartbeat/2)
	b.WriteString("  members:\n")
	for _, o := range c.members {
		fmt.Fprintf(&b, "    - id: %s\n      raftAddress: %s\n      clientAddress: %s\n", o.id, o.raft, o.mqtt)
	}
	if c.dial != nil {
		b.WriteString("  dialAddresses:\n")
		for j, o := range c.members {
			if j != i {
				fmt.Fprintf(&b, "    %s: %s\n", o.id, c.dial(i, j))
			}
		}
	}
	if err := os.WriteFile(m.cfgFile, []byte(b.String()), 0o600); err != nil {
		c.t.Fatal(err)
	}
}

// start launches member i (its config written afresh).
func (c *testCluster) start(i int) {
	c.t.Helper()
	c.writeConfig(i)
	m := c.members[i]
	logf, err := os.OpenFile(filepath.Join(filepath.Dir(m.cfgFile), m.id+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command(bollardBin, "--config", m.cfgFile)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); _ = logf.Close(); close(done) }()
	m.mu.Lock()
	m.cmd, m.done, m.log = cmd, done, logf
	m.mu.Unlock()
}

func (c *testCluster) startAll() {
	for i := range c.members {
		c.start(i)
	}
}

func (m *member) running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return false
	}
	select {
	case <-m.done:
		return false
	default:
		return true
	}
}

// killNow sends SIGKILL and waits for the process to end.
func (m *member) killNow() {
	m.signal(syscall.SIGKILL, 10*time.Second)
}

// signal sends sig and waits up to d for the process to end; it reports
// whether it ended.
func (m *member) signal(sig syscall.Signal, d time.Duration) bool {
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.mu.Unlock()
	if cmd == nil {
		return true
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// logTail returns the end of a member's log, for failure messages.
func (c *testCluster) logTail(i int) string {
	m := c.members[i]
	data, _ := os.ReadFile(filepath.Join(filepath.Dir(m.cfgFile), m.id+".log"))
	if len(data) > 4000 {
		data = data[len(data)-4000:]
	}
	return string(data)
}

// clusterStatus is the part of GET /v1/cluster the tests read.
type clusterStatus struct {
	ID      string `json:"id"`
	Role    string `json:"role"`
	Serving bool   `json:"serving"`
	Term    uint64 `json:"term"`
	Leader  string `json:"leader"`
	Applied uint64 `json:"appliedIndex"`
	Members []struct {
		ID    string  `json:"id"`
		Voter bool    `json:"voter"`
		Lag   *uint64 `json:"lag"`
	} `json:"members"`
}

func (m *member) status() (clusterStatus, error) {
	var s clusterStatus
	cl := http.Client{Timeout: 2 * time.Second}
	resp, err := cl.Get("http://" + m.admin + "/v1/cluster")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("GET /v1/cluster: %s", resp.Status)
	}
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

func (m *member) ready() bool {
	cl := http.Client{Timeout: 2 * time.Second}
	resp, err := cl.Get("http://" + m.admin + "/readyz")
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// leader waits for a member that serves and returns its index.
func (c *testCluster) leader(d time.Duration) int {
	c.t.Helper()
	idx := -1
	err := poll.Until(context.Background(), d, 20*time.Millisecond, poll.Bool(func() bool {
		for i, m := range c.members {
			if !m.running() {
				continue
			}
			if s, err := m.status(); err == nil && s.Serving && m.ready() {
				idx = i
				return true
			}
		}
		return false
	}))
	if err != nil {
		for i := range c.members {
			c.t.Logf("member %d log tail:\n%s", i, c.logTail(i))
		}
		c.t.Fatalf("no member serves after %s", d)
	}
	return idx
}

func (c *testCluster) addrs() []string {
	var out []string
	for _, m := range c.members {
		out = append(out, m.mqtt)
	}
	return out
}

// dialAny connects a 5.0 client through the members in turn, following a
// CONNACK 0x9C Use another server to its Server Reference, until one
// accepts or ctx ends. It returns the client and the address it reached.
func dialAny(ctx context.Context, addrs []string, clientID string, clean bool, expiry uint32, onMsg func(*paho.Publish)) (*paho.Client, *paho.Connack, string, error) {
	var last error
	for ctx.Err() == nil {
		for _, a := range addrs {
			target := a
			for hop := 0; hop < 3; hop++ {
				c, ack, err := mqtttest.Dial(ctx, target, clientID, clean, expiry, onMsg)
				if err == nil {
					return c, ack, target, nil
				}
				last = err
				if ack != nil && ack.ReasonCode == 0x9C && ack.Properties != nil && ack.Properties.ServerReference != "" {
					target = ack.Properties.ServerReference
					continue
				}
				break
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil, nil, "", errors.Join(ctx.Err(), last)
}
