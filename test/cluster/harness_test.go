// Package cluster_test runs replicated Bollard clusters of three real
// processes on 127.0.0.1 and checks what replication promises: nothing
// acknowledged is lost when members die, are cut off or restart, QoS 2 is
// delivered once, clients find the leader through any member, and
// failover is fast.
//
// Every scenario runs a workload (test/history/workload) recording into one
// test/history Recorder: publishers at QoS 1 and QoS 2 (window 1, counting
// acknowledgements) and persistent subscribers at QoS 1 and QoS 2, online
// throughout and offline until the end; history.Check then proves every
// acknowledged message reached every subscriber, in order per publisher,
// QoS 2 once, nothing that was never sent.
//
//   - TestLeaderKilledUnderLoad: kill -9 of the leader at moments picked
//     by the traffic (3 times, 1 with -short), restarted as a follower.
//   - TestFollowerKilledUnderLoad: kill -9 of a follower: the leader stays,
//     no client is disconnected, the member catches up.
//   - TestIsolatedLeader: the leader cut off from both followers by a
//     test/faultproxy Mesh on the replication links: it steps down within
//     its lease, acknowledges nothing after it, disconnects its clients;
//     the others elect a leader; healed, it follows.
//   - TestFullRestart: kill -9 of all three at once, then start: everything
//     acknowledged survives.
//   - TestCatchUpBySnapshot: a follower down while messages queue for
//     offline subscribers (BOLLARD_CLUSTER_QUEUE, 20,000; 5,000 with
//     -short) catches up by installing the leader's snapshot
//     (snapshotEvery 1000, trailingLogs 500), then leads, and the queues
//     drain from it.
//   - TestRollingRestart: SIGTERM of each member, followers first: a
//     follower's restart disconnects nobody; the leader lets the commits
//     in flight finish before it transfers its leadership, so it refuses
//     no publish, and each of its clients is disconnected once, with
//     DISCONNECT 0x9C naming the new leader.
//   - TestRecoverFromLostQuorum: two members killed and their data wiped
//     after the publishers stopped and the survivor caught up; the
//     survivor recovered alone (bollard cluster recover --at-next-start),
//     the two added back empty (caught up by snapshot), the regrown
//     cluster's leader killed; every acknowledged message is delivered.
//   - TestFailoverTimes: BOLLARD_CLUSTER_KILLS (5) kills of
//     the leader with SIGKILL and as many with SIGTERM, timed to the first
//     CONNACK from a new leader; logs min/p50/p99/max (skipped by -short).
//   - TestSteadyLoad (only with BOLLARD_CLUSTER_STEADY=<duration>): the
//     workload for that long with nothing failing; counts elections and
//     heartbeat timeouts, and fails on a change of leader.
//
// Members are built with -race when the tests are (not with -short, whose
// quick loop cannot afford three race-built processes), except for the two
// scenarios that measure time or need throughput (TestCatchUpBySnapshot,
// TestFailoverTimes), whose correctness the others cover. They run with the
// default cluster timeouts (heartbeat, election and lease 500 ms). A member
// that ends unasked, or whose log shows a data race or a panic, fails the
// test. BOLLARD_CLUSTER_LOGS=<dir> keeps every member's log;
// BOLLARD_CLUSTER_SEED replays a run's random moments.
package cluster_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/test/faultproxy"
	"github.com/bollard-io/bollard/test/logcheck"
	"github.com/bollard-io/bollard/test/mqtttest"
	"github.com/bollard-io/bollard/test/poll"
	"github.com/bollard-io/bollard/test/ports"
)

// binDir holds the bollard binaries the tests build.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "bollard-cluster-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var (
	buildMu sync.Mutex
	builds  = map[bool]string{} // -race -> the binary
)

// binary builds cmd/bollard once per flavour: with -race when race is set.
func binary(t *testing.T, race bool) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if b, ok := builds[race]; ok {
		return b
	}
	name, args := "bollard", []string{"build"}
	if race {
		name, args = "bollard-race", append(args, "-race")
	}
	out := filepath.Join(binDir, name)
	cmd := exec.Command("go", append(args, "-o", out, "github.com/bollard-io/bollard/cmd/bollard")...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building cmd/bollard: %v\n%s", err, b)
	}
	builds[race] = out
	return out
}

// member is one bollard process of a test cluster.
type member struct {
	id                     string
	mqtt, admin, raft, dir string
	cfgFile, logFile       string
	bin                    string // the bollard binary it runs ("": the cluster's)

	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan struct{}
	expected bool  // the test asked the process to end (kill, signal)
	unasked  int   // exits nobody asked for
	exitErr  error // how the last process ended (nil: exit status 0)
}

// testCluster is n members on loopback ports.
type testCluster struct {
	t       *testing.T
	members []*member
	secret  string
	bin     string
	// snapshotEvery and trailingLogs are cluster.snapshotEvery and
	// cluster.trailingLogs (0: the defaults).
	snapshotEvery, trailingLogs int
	// extra is top-level YAML added to every member's configuration.
	extra string
	// mesh, when set, carries every replication connection: member i
	// dials member j at mesh.Addr(i, j).
	mesh *faultproxy.Mesh
	// noBootstrap lists members started without cluster.bootstrap (added
	// to a running cluster, as the operator does once a leader served).
	noBootstrap map[int]bool
}

// option configures newCluster.
type option func(*clusterOptions)

type clusterOptions struct {
	snapshotEvery, trailingLogs int
	mesh                        bool
	race                        bool
	extra                       string
}

// withConfig adds top-level YAML to every member's configuration.
func withConfig(yaml string) option { return func(o *clusterOptions) { o.extra += yaml } }

// withSnapshots sets cluster.snapshotEvery and cluster.trailingLogs.
func withSnapshots(every, trailing int) option {
	return func(o *clusterOptions) { o.snapshotEvery, o.trailingLogs = every, trailing }
}

// withMesh puts a fault-injecting proxy on every replication link.
func withMesh() option { return func(o *clusterOptions) { o.mesh = true } }

// withoutRace runs members built without -race even when the tests are:
// for scenarios that measure time or need throughput, whose correctness
// the -race scenarios cover.
func withoutRace() option { return func(o *clusterOptions) { o.race = false } }

func freePorts(t *testing.T, n int) []string {
	t.Helper()
	// Below the ephemeral range: a member's port stays its own while the
	// member is stopped in a restart test, whatever connections the test
	// makes meanwhile (test/ports).
	out, err := ports.Free(n)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func newCluster(t *testing.T, n int, opts ...option) *testCluster {
	t.Helper()
	// -short (make test-fast) runs members without -race: a race build of
	// three members costs most of the quick loop's CPU; make test keeps it.
	o := clusterOptions{race: raceBuild && !testing.Short()}
	for _, f := range opts {
		f(&o)
	}
	c := &testCluster{t: t, snapshotEvery: o.snapshotEvery, trailingLogs: o.trailingLogs,
		extra: o.extra, bin: binary(t, o.race)}
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
		m.logFile = filepath.Join(base, m.id+".log")
		c.members = append(c.members, m)
	}
	if o.mesh {
		var targets []string
		for _, m := range c.members {
			targets = append(targets, m.raft)
		}
		mesh, err := faultproxy.NewMesh(targets)
		if err != nil {
			t.Fatal(err)
		}
		c.mesh = mesh
	}
	t.Cleanup(c.cleanup)
	return c
}

// cleanup kills every member and reports what their logs show went wrong:
// a process that ended unasked, a data race, a panic.
func (c *testCluster) cleanup() {
	for _, m := range c.members {
		m.killNow()
	}
	if c.mesh != nil {
		if err := c.mesh.Close(); err != nil {
			c.t.Errorf("closing the mesh: %v", err)
		}
	}
	for i, m := range c.members {
		m.mu.Lock()
		unasked := m.unasked
		m.mu.Unlock()
		data, _ := os.ReadFile(m.logFile)
		log := string(data)
		switch {
		case unasked > 0:
			c.t.Errorf("%s ended %d times without being asked to; its log ends:\n%s", m.id, unasked, c.logTail(i))
		case strings.Contains(log, "WARNING: DATA RACE"):
			c.t.Errorf("%s: data race:\n%s", m.id, excerpt(log, "WARNING: DATA RACE"))
		case strings.Contains(log, "panic:"):
			c.t.Errorf("%s: panic:\n%s", m.id, excerpt(log, "panic:"))
		}
		if line, key := logcheck.RepeatedKey(log); key != "" {
			c.t.Errorf("%s logged %q twice in one record (a log shipper keeps one): %s", m.id, key, line)
		}
		if c.t.Failed() {
			c.t.Logf("%s log tail:\n%s", m.id, c.logTail(i))
		}
	}
	c.keepLogs()
}

// keepLogs copies the members' logs into $BOLLARD_CLUSTER_LOGS/<test>/,
// when set, to read after the run.
func (c *testCluster) keepLogs() {
	root := os.Getenv("BOLLARD_CLUSTER_LOGS")
	if root == "" {
		return
	}
	dir := filepath.Join(root, strings.ReplaceAll(c.t.Name(), "/", "_"))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		c.t.Errorf("keeping the logs: %v", err)
		return
	}
	for _, m := range c.members {
		data, err := os.ReadFile(m.logFile)
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, m.id+".log"), data, 0o600)
		}
		if err != nil {
			c.t.Errorf("keeping the log of %s: %v", m.id, err)
		}
	}
	c.t.Logf("member logs kept in %s", dir)
}

// excerpt is the part of log from the first occurrence of s on.
func excerpt(log, s string) string {
	i := strings.Index(log, s)
	return log[i:min(len(log), i+6000)]
}

func (c *testCluster) writeConfig(i int) {
	m := c.members[i]
	var b strings.Builder
	fmt.Fprintf(&b, "listeners:\n  mqtt:\n    address: %s\nadmin:\n  address: %s\ndataDir: %s\n", m.mqtt, m.admin, m.dir)
	fmt.Fprintf(&b, "auth:\n  allowAnonymous: true\ndrainTimeout: 10s\n")
	b.WriteString(c.extra)
	fmt.Fprintf(&b, "cluster:\n  memberID: %s\n  bind: %s\n  bootstrap: %t\n  secretFile: %s\n", m.id, m.raft, !c.noBootstrap[i], c.secret)
	if c.snapshotEvery > 0 {
		fmt.Fprintf(&b, "  snapshotEvery: %d\n", c.snapshotEvery)
	}
	if c.trailingLogs > 0 {
		fmt.Fprintf(&b, "  trailingLogs: %d\n", c.trailingLogs)
	}
	b.WriteString("  members:\n")
	for _, o := range c.members {
		fmt.Fprintf(&b, "    - id: %s\n      raftAddress: %s\n      clientAddress: %s\n", o.id, o.raft, o.mqtt)
	}
	if c.mesh != nil {
		b.WriteString("  dialAddresses:\n")
		for j, o := range c.members {
			if j != i {
				fmt.Fprintf(&b, "    %s: %s\n", o.id, c.mesh.Addr(i, j))
			}
		}
	}
	if err := os.WriteFile(m.cfgFile, []byte(b.String()), 0o600); err != nil {
		c.t.Fatal(err)
	}
}

// lease is the members' leader lease timeout: they run with the default
// timeouts, which the scenarios check on a loaded machine.
func (c *testCluster) lease() time.Duration {
	_, _, lease := config.Cluster{}.Timeouts()
	return lease
}

// start launches member i (its config written afresh).
func (c *testCluster) start(i int) {
	c.t.Helper()
	c.startAs(i, false)
}

// startFailing starts member i expecting its process to end by itself
// within d, and returns how it ended (nil: status 0).
func (c *testCluster) startFailing(i int, d time.Duration) error {
	c.t.Helper()
	c.startAs(i, true)
	return c.waitEnd(i, d, "by itself ")
}

// waitEnd fails the test unless member i's process ends within d, and
// returns how it ended (nil: status 0); how goes into the failure.
func (c *testCluster) waitEnd(i int, d time.Duration, how string) error {
	c.t.Helper()
	m := c.members[i]
	m.mu.Lock()
	done := m.done
	m.mu.Unlock()
	select {
	case <-done:
	case <-time.After(d):
		c.t.Fatalf("%s did not end %swithin %s; its log ends:\n%s", m.id, how, d, c.logTail(i))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.exitErr
}

// startAs starts member i; with expectEnd its process ending is not
// reported as unasked.
func (c *testCluster) startAs(i int, expectEnd bool) {
	c.t.Helper()
	c.writeConfig(i)
	m := c.members[i]
	logf, err := os.OpenFile(m.logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		c.t.Fatal(err)
	}
	bin := c.bin
	if m.bin != "" {
		bin = m.bin
	}
	cmd := exec.Command(bin, "--config", m.cfgFile)
	cmd.Stdout, cmd.Stderr = logf, logf
	// A member outlives neither the test binary (a timeout's panic, a
	// killed `go test`) nor holds its ports and CPU for the next run.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	done := make(chan struct{})
	m.mu.Lock()
	m.cmd, m.done, m.expected = cmd, done, expectEnd
	m.mu.Unlock()
	go func() {
		err := cmd.Wait()
		_ = logf.Close()
		m.mu.Lock()
		m.exitErr = err
		if !m.expected {
			m.unasked++
		}
		m.mu.Unlock()
		close(done)
	}()
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
	m.expected = true
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

// stopGracefully sends SIGTERM and fails the test unless the process ends
// with status 0 within d.
func (c *testCluster) stopGracefully(i int, d time.Duration) {
	c.t.Helper()
	m := c.members[i]
	m.mu.Lock()
	m.expected = true
	cmd := m.cmd
	m.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	c.waitClean(i, d)
}

// waitClean fails the test unless member i's process ends with status 0
// within d (it was asked to stop).
func (c *testCluster) waitClean(i int, d time.Duration) {
	c.t.Helper()
	m := c.members[i]
	if err := c.waitEnd(i, d, ""); err != nil {
		c.t.Fatalf("%s ended with %v; its log ends:\n%s", m.id, err, c.logTail(i))
	}
}

// logTail returns the end of a member's log, for failure messages.
func (c *testCluster) logTail(i int) string {
	data, _ := os.ReadFile(c.members[i].logFile)
	if len(data) > 4000 {
		data = data[len(data)-4000:]
	}
	return string(data)
}

// logContains reports whether member i's log has s.
func (c *testCluster) logContains(i int, s string) bool {
	data, _ := os.ReadFile(c.members[i].logFile)
	return strings.Contains(string(data), s)
}

// clusterStatus is the part of GET /v1/cluster the tests read.
type clusterStatus struct {
	ID           string `json:"id"`
	Role         string `json:"role"`
	Serving      bool   `json:"serving"`
	Term         uint64 `json:"term"`
	Leader       string `json:"leader"`
	LastLog      uint64 `json:"lastLogIndex"`
	LastLogTerm  uint64 `json:"lastLogTerm"`
	Commit       uint64 `json:"commitIndex"`
	Applied      uint64 `json:"appliedIndex"`
	LastSnapshot uint64 `json:"lastSnapshotIndex"`
	EntryFormat  int    `json:"entryFormat"` // 0 from a build that predates it
	Members      []struct {
		ID    string  `json:"id"`
		Voter bool    `json:"voter"`
		Match *uint64 `json:"matchIndex"`
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

// post POSTs to an admin path of member m.
func (m *member) post(path string) error {
	cl := http.Client{Timeout: 30 * time.Second}
	resp, err := cl.Post("http://"+m.admin+path, "application/json", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %s: %s", path, resp.Status, body)
	}
	return nil
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
		idx = c.serving()
		return idx >= 0
	}))
	if err != nil {
		c.t.Fatalf("no member serves after %s", d)
	}
	return idx
}

// leaderOtherThan waits for a member other than x that serves.
func (c *testCluster) leaderOtherThan(x int, d time.Duration) int {
	c.t.Helper()
	idx := -1
	err := poll.Until(context.Background(), d, 20*time.Millisecond, poll.Bool(func() bool {
		idx = c.serving(x)
		return idx >= 0
	}))
	if err != nil {
		c.t.Fatalf("no member but %s serves after %s", c.members[x].id, d)
	}
	return idx
}

// serving is the index of a running member, not among except, that
// serves now, or -1.
func (c *testCluster) serving(except ...int) int {
	for i, m := range c.members {
		if !m.running() || slices.Contains(except, i) {
			continue
		}
		if s, err := m.status(); err == nil && s.Serving && m.ready() {
			return i
		}
	}
	return -1
}

// following waits until member i follows leader l and has applied what l
// had committed when the wait began.
func (c *testCluster) following(i, l int, d time.Duration) {
	c.t.Helper()
	ls, err := c.members[l].status()
	if err != nil {
		c.t.Fatalf("status of the leader %s: %v", c.members[l].id, err)
	}
	var last clusterStatus
	err = poll.Until(context.Background(), d, 50*time.Millisecond, poll.Bool(func() bool {
		s, err := c.members[i].status()
		last = s
		return err == nil && s.Role == "follower" && s.Leader == c.members[l].id && s.Applied >= ls.Commit
	}))
	if err != nil {
		c.t.Fatalf("%s does not follow %s with index %d applied after %s: %+v", c.members[i].id, c.members[l].id, ls.Commit, d, last)
	}
}

func (c *testCluster) addrs() []string {
	var out []string
	for _, m := range c.members {
		out = append(out, m.mqtt)
	}
	return out
}

// index is the member whose MQTT address is addr, or -1.
func (c *testCluster) index(addr string) int {
	for i, m := range c.members {
		if m.mqtt == addr {
			return i
		}
	}
	return -1
}

// connectProbe connects a fresh 5.0 client through addrs (following
// CONNACK 0x9C Use another server, but never to avoid) until one is
// accepted or ctx ends, and returns the address that accepted it. It
// disconnects at once.
func connectProbe(ctx context.Context, addrs []string, avoid, clientID string) (string, error) {
	var last error
	for ctx.Err() == nil {
		for _, a := range addrs {
			target := a
			for hop := 0; hop < 3 && ctx.Err() == nil && target != avoid; hop++ {
				dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				c, _, err := mqtttest.Dial(dctx, target, clientID, true, 0, nil)
				cancel()
				if err == nil {
					_ = c.Disconnect(&paho.Disconnect{})
					return target, nil
				}
				last = err
				var refused *mqtttest.RefusedError
				if errors.As(err, &refused) && refused.ServerReference() != "" {
					target = refused.ServerReference()
					continue
				}
				break
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
	return "", errors.Join(ctx.Err(), last)
}
