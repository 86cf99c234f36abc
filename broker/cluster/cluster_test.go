package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/bollard-io/bollard/broker/store"
	"github.com/bollard-io/bollard/broker/store/pebblestore"
	"github.com/bollard-io/bollard/broker/store/storetest"
	"github.com/bollard-io/bollard/test/logcheck"
	"github.com/bollard-io/bollard/test/poll"
)

var testSecret = bytes.Repeat([]byte("s"), MinSecretSize)

// fastTiming: elections within a second on loopback, yet no spurious ones
// on a busy machine running the race detector.
var fastTiming = Timing{Heartbeat: 400 * time.Millisecond, Election: 400 * time.Millisecond, LeaderLease: 300 * time.Millisecond, Commit: 10 * time.Millisecond}

// steadyTiming is for tests of what a cluster stores, not of failover.
var steadyTiming = Timing{Heartbeat: time.Second, Election: time.Second, LeaderLease: time.Second, Commit: 10 * time.Millisecond}

func freeAddrs(t testing.TB, n int) []string {
	t.Helper()
	var addrs []string
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	for _, ln := range lns {
		_ = ln.Close()
	}
	return addrs
}

// testCluster is n members in one process, each in its own directory.
type testCluster struct {
	t       testing.TB
	members []Member
	dirs    []string
	nodes   []*Node
	timing  Timing
	logs    []*logcheck.Buffer // each member's log
	// tweak, when set, changes a member's configuration before it starts.
	tweak func(i int, cfg *Config)
}

func newTestCluster(t testing.TB, n int, timing Timing) *testCluster {
	t.Helper()
	return newTestClusterWith(t, n, timing, nil)
}

// newTestClusterWith starts a cluster whose members' configurations tweak
// changes (nil: none).
func newTestClusterWith(t testing.TB, n int, timing Timing, tweak func(i int, cfg *Config)) *testCluster {
	t.Helper()
	c := &testCluster{t: t, timing: timing, nodes: make([]*Node, n), tweak: tweak}
	for i, a := range freeAddrs(t, n) {
		c.members = append(c.members, Member{ID: fmt.Sprintf("m%d", i), RaftAddress: a, ClientAddress: fmt.Sprintf("client-%d:1883", i)})
		c.dirs = append(c.dirs, t.TempDir())
		c.logs = append(c.logs, &logcheck.Buffer{})
	}
	for i := range n {
		c.start(i)
	}
	t.Cleanup(func() {
		for i := range c.nodes {
			c.stop(i)
		}
	})
	return c
}

func (c *testCluster) start(i int) {
	c.t.Helper()
	cfg := Config{
		ID: c.members[i].ID, Dir: c.dirs[i], Bind: c.members[i].RaftAddress, Members: c.members,
		Bootstrap: true, Secret: testSecret, Timing: c.timing,
		Logger: slog.New(slog.NewTextHandler(c.logs[i], nil)),
	}
	if c.tweak != nil {
		c.tweak(i, &cfg)
	}
	n, err := Open(cfg)
	if err != nil {
		c.t.Fatalf("start %s: %v", c.members[i].ID, err)
	}
	c.nodes[i] = n
}

func (c *testCluster) stop(i int) {
	if c.nodes[i] != nil {
		if err := c.nodes[i].Close(); err != nil {
			c.t.Errorf("close %s: %v", c.members[i].ID, err)
		}
		c.nodes[i] = nil
	}
}

// leader waits for a serving leader and returns its index. When every
// member runs, with the build's format (no tweak), it also waits until the
// leader raised the cluster's entry format (format.go), so that no format
// entry enters the log later, among the entries a test counts.
func (c *testCluster) leader() int {
	c.t.Helper()
	idx := -1
	all := c.tweak == nil
	for _, n := range c.nodes {
		all = all && n != nil
	}
	poll.Wait(c.t, 20*time.Second, 10*time.Millisecond, "a serving leader", func() bool {
		for i, n := range c.nodes {
			if n == nil {
				continue
			}
			if s, _ := n.State(); s.Serving && (!all || n.st.writeFormat() == n.reads()) {
				idx = i
				return true
			}
		}
		return false
	})
	return idx
}

func sessionBatch(clientID string) *store.Batch {
	b := &store.Batch{}
	b.PutSession(&store.Session{ClientID: clientID, ProtocolVersion: 5, ExpiryInterval: 3600})
	return b
}

func enqueueBatch(st store.Store, clientID string, seq uint64, payload string) *store.Batch {
	b := &store.Batch{}
	id := st.NextMessageID()
	b.PutMessage(&store.Message{ID: id, Topic: "t", Payload: []byte(payload), QoS: 1})
	b.Enqueue(clientID, &store.QueueEntry{Seq: seq, MessageID: id, QoS: 1})
	return b
}

func payloads(t testing.TB, st store.Store, clientID string) []string {
	t.Helper()
	var out []string
	if err := st.ReadQueue(clientID, 0, 0, func(_ store.QueueEntry, m *store.Message) bool {
		out = append(out, string(m.Payload))
		return true
	}); err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	return out
}

// waitApplied waits until n's store holds every entry the leader's store
// holds. It compares the stores' own indexes, not Raft's applied index:
// Raft counts an entry applied when it hands it to the state machine, so a
// member can report an index its store has not written yet.
func waitApplied(t testing.TB, n, leader *Node) {
	t.Helper()
	index := leader.st.cur().AppliedIndex()
	poll.Wait(t, 20*time.Second, 10*time.Millisecond, fmt.Sprintf("%s to apply index %d", n.cfg.ID, index), func() bool {
		return n.st.cur().AppliedIndex() >= index
	})
}

// commitQueue commits a session for clientID, then n messages queued for
// it, message i with payload(i), one commit each.
func commitQueue(t testing.TB, st store.Store, clientID string, n int, payload func(int) string) {
	t.Helper()
	ctx := context.Background()
	if err := st.Commit(ctx, sessionBatch(clientID)); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		if err := st.Commit(ctx, enqueueBatch(st, clientID, uint64(i), payload(i))); err != nil {
			t.Fatal(err)
		}
	}
}

// nodeStore is a Node seen as a store.Store that closes the whole member,
// for the store contract suite.
type nodeStore struct {
	store.Store
	n *Node
}

func (s nodeStore) Close() error { return s.n.Close() }

func openSingle(t *testing.T, dir string) store.Store {
	n := openSingleNoWait(t, dir)
	poll.Wait(t, 20*time.Second, 5*time.Millisecond, "the member to serve in the build's entry format", func() bool {
		s, _ := n.State()
		return s.Serving && n.st.writeFormat() == n.reads()
	})
	return nodeStore{Store: n.Store(), n: n}
}

// openSingleNoWait opens (or reopens) a one-member cluster in dir.
func openSingleNoWait(t *testing.T, dir string) *Node {
	addr := freeAddrs(t, 1)[0]
	n, err := Open(Config{
		ID: "solo", Dir: dir, Bind: addr, Members: []Member{{ID: "solo", RaftAddress: addr}},
		Bootstrap: true, Secret: testSecret, Timing: fastTiming,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s := openSingle(t, t.TempDir())
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

func TestStoreContractDurable(t *testing.T) {
	storetest.RunDurable(t, openSingle)
}

func TestStoreContractThreeMembers(t *testing.T) {
	if testing.Short() {
		t.Skip("a cluster per subtest; the one-member suite runs in -short (make test runs this)")
	}
	storetest.Run(t, func(t *testing.T) store.Store {
		// No election is under test here: a lease of a second keeps a
		// race-built leader on a loaded machine from losing it mid-suite
		// (fastTiming's 300 ms did, about one run in four at load 10-18).
		c := newTestCluster(t, 3, steadyTiming)
		l := c.leader()
		return c.nodes[l].Store()
	})
}

func TestReplicatesAndFailsOver(t *testing.T) {
	c := newTestCluster(t, 3, fastTiming)
	l := c.leader()
	st := c.nodes[l].Store()
	ctx := context.Background()
	commitQueue(t, st, "dev", 50, strconv.Itoa)
	// A follower refuses commits: only the leader writes.
	f := (l + 1) % 3
	if err := c.nodes[f].Store().Commit(ctx, sessionBatch("x")); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("commit on a follower: err = %v, want ErrNotLeader", err)
	}
	for i, n := range c.nodes {
		waitApplied(t, n, c.nodes[l])
		if got := payloads(t, n.Store(), "dev"); len(got) != 50 || got[0] != "1" || got[49] != "50" {
			t.Fatalf("member %d holds %d entries (%v...)", i, len(got), got[:min(3, len(got))])
		}
	}
	// Every member timed its log's syncs (bollard_store_fsync_duration_seconds)
	// and counts its log's writes (bollard_cluster_log_*): at least the 50
	// batches in appends of one or more entries, each synced once, in a
	// segment it began.
	for i, n := range c.nodes {
		fs := n.Store().(store.FsyncReporter).FsyncLatency()
		if fs.Count == 0 || fs.Sum <= 0 || fs.Cumulative[len(fs.Cumulative)-1] > fs.Count {
			t.Fatalf("member %d: log fsyncs %+v", i, fs)
		}
		lg := n.Status().Log
		if lg.WrittenEntries < 50 || lg.Appends == 0 || lg.Appends > lg.WrittenEntries || lg.WrittenBytes < lg.WrittenEntries ||
			lg.SegmentsFromSpare+lg.SegmentsFilledInPlace == 0 || lg.TruncatedTail != 0 {
			t.Fatalf("member %d: log writes %+v", i, lg)
		}
		if fs.Count < lg.Appends {
			t.Fatalf("member %d: %d log syncs for %d appends", i, fs.Count, lg.Appends)
		}
	}
	srv, _ := c.nodes[f].State()
	if srv.LeaderID != c.members[l].ID || srv.LeaderClientAddress != c.members[l].ClientAddress {
		t.Fatalf("follower names leader %q at %q, want %q at %q", srv.LeaderID, srv.LeaderClientAddress, c.members[l].ID, c.members[l].ClientAddress)
	}

	// The leader dies; another serves the same state and carries on.
	c.stop(l)
	l2 := c.leader()
	if l2 == l {
		t.Fatal("a stopped member serves")
	}
	st2 := c.nodes[l2].Store()
	if got := payloads(t, st2, "dev"); len(got) != 50 {
		t.Fatalf("new leader holds %d entries, want 50", len(got))
	}
	for i := 51; i <= 60; i++ {
		if err := st2.Commit(ctx, enqueueBatch(st2, "dev", uint64(i), fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	// The old leader comes back and catches up from the log.
	c.start(l)
	waitApplied(t, c.nodes[l], c.nodes[l2])
	if got := payloads(t, c.nodes[l].Store(), "dev"); len(got) != 60 || got[59] != "60" {
		t.Fatalf("rejoined member holds %d entries", len(got))
	}
	// The leader learns a follower's match index from its answer to an
	// append, which may come a moment after the follower's store applied
	// the entries.
	var status Status
	missing := func() string {
		status = c.nodes[l2].Status()
		for _, m := range status.Members {
			if m.ID != status.ID && (m.Lag == nil || m.MatchIndex == nil) {
				return m.ID
			}
		}
		return ""
	}
	poll.Wait(t, 10*time.Second, 10*time.Millisecond, "the leader to report every follower's lag", func() bool { return missing() == "" })
	if status.Role != Leader || len(status.Members) != 3 {
		t.Fatalf("leader status: %+v", status)
	}
}

// A member that was down while the log moved past a snapshot catches up
// by installing the snapshot.
func TestCatchUpFromSnapshot(t *testing.T) {
	timing := fastTiming
	timing.SnapshotEvery, timing.TrailingLogs = 50, 10
	c := newTestCluster(t, 3, timing)
	l := c.leader()
	down := (l + 1) % 3
	c.stop(down)
	st := c.nodes[l].Store()
	commitQueue(t, st, "dev", 400, strconv.Itoa)
	// Make sure the leader snapshotted and compacted its log.
	if err := c.nodes[l].raft.Snapshot().Error(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
		t.Fatal(err)
	}
	if first, err := c.nodes[l].logs.FirstIndex(); err != nil || first <= 2 {
		t.Fatalf("leader log starts at %d (%v): not compacted", first, err)
	}
	c.start(down)
	waitApplied(t, c.nodes[down], c.nodes[l])
	if got := payloads(t, c.nodes[down].Store(), "dev"); len(got) != 400 || got[399] != "400" {
		t.Fatalf("member restored from a snapshot holds %d entries", len(got))
	}
	// The member logs the install just after the restored store serves
	// reads, so the line may come a moment after the entries.
	poll.Wait(t, 10*time.Second, 10*time.Millisecond, "the member's log to tell of the snapshot it installed", func() bool {
		return strings.Contains(c.logs[down].String(), "installed a snapshot from the leader")
	})
	// The restored member restarts from its own store.
	c.stop(down)
	c.start(down)
	if got := payloads(t, c.nodes[down].Store(), "dev"); len(got) != 400 {
		t.Fatalf("after a restart the member holds %d entries", len(got))
	}
}

// Members snapshot once SnapshotEvery entries have gone by, within a few
// seconds (Raft's own check comes every 2 to 4 minutes), and the leader
// compacts its log past them.
func TestSnapshotsFollowSnapshotEvery(t *testing.T) {
	timing := fastTiming
	timing.SnapshotEvery, timing.TrailingLogs = 50, 10
	c := newTestCluster(t, 3, timing)
	l := c.leader()
	st := c.nodes[l].Store()
	commitQueue(t, st, "dev", 120, strconv.Itoa)
	for i, n := range c.nodes {
		poll.Wait(t, 4*snapshotCheck+5*time.Second, 50*time.Millisecond, c.members[i].ID+" to snapshot", func() bool {
			return n.Status().LastSnapshotIndex >= 50
		})
	}
	poll.Wait(t, 5*time.Second, 50*time.Millisecond, "the leader to compact its log", func() bool {
		first, err := c.nodes[l].logs.FirstIndex()
		return err == nil && first > 2
	})
	if lg := c.nodes[l].Status().Log; lg.TruncatedHead == 0 {
		t.Fatalf("the leader compacted its log and counts no truncated entries: %+v", lg)
	}
}

// A member's disk usage counts its Raft log and snapshots (copies of the
// store) against the budget, and reserves room for its next snapshot.
func TestDiskUsageCountsRaftAndReservesASnapshot(t *testing.T) {
	dir := t.TempDir()
	st := openSingle(t, dir)
	t.Cleanup(func() { _ = st.Close() })
	commitQueue(t, st, "dev", 200, func(int) string { return strings.Repeat("x", 4096) })
	if err := st.(nodeStore).n.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	u, err := st.(nodeStore).n.st.DiskUsage()
	if err != nil {
		t.Fatal(err)
	}
	own, err := st.(nodeStore).n.st.cur().DiskUsage()
	if err != nil {
		t.Fatal(err)
	}
	raft, err := treeBytes(filepath.Join(dir, "raft"))
	if err != nil {
		t.Fatal(err)
	}
	// 200 x 4 KiB went into the log and into the snapshot.
	if raft < 2*200*4096 || u.Reserved <= 0 || u.Used < own.Used+raft/2 || u.VolumeSize <= 0 {
		t.Fatalf("disk usage %+v; the store alone %+v, raft/ %d bytes", u, own, raft)
	}
}

// A member that learns the leader before it watches Raft's observations
// (a restarted member the leader contacts at once) names the leader, so it
// can send clients there. It named none until the next election.
func TestRejoinedMemberNamesTheLeader(t *testing.T) {
	c := newTestCluster(t, 3, fastTiming)
	l := c.leader()
	f := (l + 1) % 3
	c.stop(f)
	observeHook = func(n *Node) {
		poll.Wait(t, 20*time.Second, 5*time.Millisecond, "the member to hear from the leader", func() bool {
			_, id := n.raft.LeaderWithID()
			return id != ""
		})
	}
	t.Cleanup(func() { observeHook = nil })
	c.start(f)
	want := c.members[l]
	poll.Wait(t, 5*time.Second, 10*time.Millisecond, "the member to name the leader", func() bool {
		s, _ := c.nodes[f].State()
		return s.LeaderID == want.ID && s.LeaderClientAddress == want.ClientAddress
	})
}

func TestReplicationPortRefusesStrangers(t *testing.T) {
	c := newTestCluster(t, 1, fastTiming)
	c.leader()
	addr := c.members[0].RaftAddress
	// A client without the secret, and one speaking something else.
	wrong := &streamLayer{secret: bytes.Repeat([]byte("x"), MinSecretSize)}
	if conn, err := wrong.Dial(raftAddr(addr), time.Second); err == nil {
		_ = conn.Close()
		t.Fatal("a dialer without the secret was let in")
	}
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = conn.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n" + string(make([]byte, 64))))
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(conn); err != nil {
		if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("stranger connection not closed: %v", err)
		}
	}
	_ = conn.Close()
	poll.Wait(t, 10*time.Second, 10*time.Millisecond, "two refused connections", func() bool {
		return c.nodes[0].Status().RefusedConnections >= 2
	})
	// A flood of them is counted, each, and logged once (within
	// raftLogEvery): anything can reach the port.
	for range 50 {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = conn.Write(make([]byte, 64))
		_, _ = io.ReadAll(conn)
		_ = conn.Close()
	}
	poll.Wait(t, 10*time.Second, 10*time.Millisecond, "52 refused connections", func() bool {
		return c.nodes[0].Status().RefusedConnections >= 52
	})
	if n := strings.Count(c.logs[0].String(), "replication connection refused"); n != 1 {
		t.Errorf("%d log lines for 52 refused connections, want 1", n)
	}
	// The right secret gets in.
	right := &streamLayer{secret: testSecret}
	ok, err := right.Dial(raftAddr(addr), time.Second)
	if err != nil {
		t.Fatalf("a member with the secret was refused: %v", err)
	}
	_ = ok.Close()
}

func TestConfigValidation(t *testing.T) {
	base := Config{ID: "a", Dir: t.TempDir(), Bind: "127.0.0.1:0", Secret: testSecret, Bootstrap: true,
		Members: []Member{{ID: "a", RaftAddress: "127.0.0.1:1"}}}
	cases := map[string]func(c *Config){
		"no id":          func(c *Config) { c.ID = "" },
		"short secret":   func(c *Config) { c.Secret = []byte("short") },
		"self missing":   func(c *Config) { c.ID = "b" },
		"duplicate":      func(c *Config) { c.Members = append(c.Members, c.Members[0]) },
		"member no addr": func(c *Config) { c.Members = append(c.Members, Member{ID: "z"}) },
		"no dir":         func(c *Config) { c.Dir = "" },
	}
	for name, mut := range cases {
		c := base
		c.Members = append([]Member(nil), base.Members...)
		mut(&c)
		if _, err := Open(c); err == nil {
			t.Errorf("%s: Open accepted the config", name)
		}
	}

}

func raftAddr(a string) raft.ServerAddress { return raft.ServerAddress(a) }

// Scaling 1 -> 3: members started without Bootstrap wait until the leader
// adds them; each receives the state (here through a snapshot, the log
// having been compacted) before it becomes a voter.
func TestAddMembersCatchUpBeforeVoting(t *testing.T) {
	timing := fastTiming
	timing.SnapshotEvery, timing.TrailingLogs = 20, 5
	c := newTestCluster(t, 1, timing)
	l := c.leader()
	st := c.nodes[l].Store()
	ctx := context.Background()
	commitQueue(t, st, "dev", 100, strconv.Itoa)
	if err := c.nodes[l].raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	if first, _ := c.nodes[l].logs.FirstIndex(); first <= 2 {
		t.Fatalf("leader log starts at %d: not compacted", first)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for k := 1; k <= 2; k++ {
		m := Member{ID: fmt.Sprintf("new%d", k), RaftAddress: freeAddrs(t, 1)[0], ClientAddress: fmt.Sprintf("new-%d:1883", k)}
		n, err := Open(Config{ID: m.ID, Dir: t.TempDir(), Bind: m.RaftAddress, Members: append([]Member{m}, c.members...),
			Secret: testSecret, Timing: timing, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = n.Close() })
		if s, _ := n.State(); s.Serving {
			t.Fatal("a member that was not added serves")
		}
		actx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = c.nodes[l].AddMember(actx, m)
		cancel()
		if err != nil {
			t.Fatalf("add %s: %v", m.ID, err)
		}
		waitApplied(t, n, c.nodes[l])
		if got := payloads(t, n.Store(), "dev"); len(got) != 100 {
			t.Fatalf("%s holds %d entries after joining", m.ID, len(got))
		}
		if n.Status().LastSnapshotIndex == 0 {
			t.Fatalf("%s caught up without the snapshot", m.ID)
		}
	}
	voters := 0
	for _, m := range c.nodes[l].Status().Members {
		if m.Voter {
			voters++
		}
		// The client address of a configured member, and of one added.
		want := map[string]string{c.members[0].ID: c.members[0].ClientAddress, "new1": "new-1:1883", "new2": "new-2:1883"}[m.ID]
		if m.ClientAddress != want {
			t.Errorf("member %s: client address %q, want %q", m.ID, m.ClientAddress, want)
		}
	}
	if voters != 3 {
		t.Fatalf("%d voters after adding two members, want 3", voters)
	}
	// A removed member leaves the configuration.
	if err := c.nodes[l].RemoveMember("new2"); err != nil {
		t.Fatal(err)
	}
	if n := len(c.nodes[l].Status().Members); n != 2 {
		t.Fatalf("%d members after removing one", n)
	}
	if err := c.nodes[l].RemoveMember(""); !errors.Is(err, ErrInvalidMember) {
		t.Fatalf("remove with no ID: %v", err)
	}
}

// The leader applies its own entries from the batches it committed (no
// decoding), the followers decode them, and all end in the same state;
// no batch stays registered once its commit is answered.
func TestLeaderAppliesItsOwnBatches(t *testing.T) {
	c := newTestCluster(t, 3, fastTiming)
	l := c.leader()
	st := c.nodes[l].Store()
	ctx := context.Background()
	if err := st.Commit(ctx, sessionBatch("dev")); err != nil {
		t.Fatal(err)
	}
	var waits []func() error
	for i := 1; i <= 20; i++ {
		w, err := st.(store.Pipeliner).CommitNoWait(ctx, enqueueBatch(st, "dev", uint64(i), fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		waits = append(waits, w)
	}
	for _, w := range waits {
		if err := w(); err != nil {
			t.Fatal(err)
		}
	}
	// A refused batch is refused on the leader as on the followers.
	bad := &store.Batch{}
	bad.Enqueue("nobody", &store.QueueEntry{Seq: 1, MessageID: 1 << 40})
	if err := st.Commit(ctx, bad); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("refused batch: err = %v, want ErrNotFound", err)
	}
	for i, n := range c.nodes {
		waitApplied(t, n, c.nodes[l])
		if got := payloads(t, n.Store(), "dev"); len(got) != 20 || got[19] != "20" {
			t.Fatalf("member %d holds %d entries", i, len(got))
		}
		decoded := n.fsm.decoded.Load()
		switch {
		case i == l && decoded != 0:
			t.Errorf("the leader decoded %d of its own entries", decoded)
		case i != l && decoded < 22:
			t.Errorf("follower %d decoded %d entries, want 22", i, decoded)
		}
	}
	rs := st.(*replStore)
	rs.ownMu.Lock()
	left := len(rs.own)
	rs.ownMu.Unlock()
	if left != 0 {
		t.Fatalf("%d batches still registered after their commits were answered", left)
	}
}

// A NoSync batch is held back to go with the next entry, and committed in
// its place in the order: alone (no entry follows) within holdFor, and
// before an entry that follows it.
func TestNoSyncBatchesAreHeldInOrder(t *testing.T) {
	c := newTestCluster(t, 3, fastTiming)
	l := c.leader()
	st := c.nodes[l].Store()
	p := st.(store.Pipeliner)
	ctx := context.Background()
	commitQueue(t, st, "dev", 3, strconv.Itoa)
	// Alone: its wait returns once the hold ends and it is applied.
	deq := &store.Batch{NoSync: true}
	deq.Dequeue("dev", 1)
	wait, err := p.CommitNoWait(ctx, deq)
	if err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if got := payloads(t, st, "dev"); fmt.Sprint(got) != "[2 3]" {
		t.Fatalf("after the held Dequeue: %v", got)
	}
	// Followed by an entry: the held Dequeue waits for it (however long
	// the hold), then goes first.
	defer func(d time.Duration) { holdFor = d }(holdFor)
	holdFor = time.Hour
	deq = &store.Batch{NoSync: true}
	deq.Dequeue("dev", 2)
	last := c.nodes[l].raft.LastIndex()
	w1, err := p.CommitNoWait(ctx, deq)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.nodes[l].raft.LastIndex(); got != last {
		t.Fatalf("a NoSync batch went into the log at once (last index %d -> %d)", last, got)
	}
	w2, err := p.CommitNoWait(ctx, enqueueBatch(st, "dev", 4, "4"))
	if err != nil {
		t.Fatal(err)
	}
	deq = &store.Batch{NoSync: true}
	deq.Dequeue("dev", 4) // valid only after the enqueue of 4
	w3, err := p.CommitNoWait(ctx, deq)
	if err != nil {
		t.Fatal(err)
	}
	// The last one is released by a Commit (any entry after it).
	if err := st.Commit(ctx, sessionBatch("other")); err != nil {
		t.Fatal(err)
	}
	for i, w := range []func() error{w1, w2, w3} {
		if err := w(); err != nil {
			t.Fatalf("commit %d: %v", i+1, err)
		}
	}
	for i, n := range c.nodes {
		waitApplied(t, n, c.nodes[l])
		if got := payloads(t, n.Store(), "dev"); fmt.Sprint(got) != "[3]" {
			t.Fatalf("member %d holds %v, want [3]", i, got)
		}
	}
}

// At most holdMax NoSync batches are held: one more puts them in the log.
func TestNoSyncHoldIsBounded(t *testing.T) {
	c := newTestCluster(t, 3, fastTiming)
	l := c.leader()
	st := c.nodes[l].Store()
	p := st.(store.Pipeliner)
	ctx := context.Background()
	if err := st.Commit(ctx, sessionBatch("dev")); err != nil {
		t.Fatal(err)
	}
	defer func(d time.Duration) { holdFor = d }(holdFor)
	holdFor = time.Hour
	last := c.nodes[l].raft.LastIndex()
	var waits []func() error
	for i := range holdMax + 1 {
		b := &store.Batch{NoSync: true}
		b.DeleteInboundQoS2("dev", uint16(i+1)) // a valid no-op
		w, err := p.CommitNoWait(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		waits = append(waits, w)
	}
	for i, w := range waits[:holdMax] {
		if err := w(); err != nil {
			t.Fatalf("held batch %d: %v", i, err)
		}
	}
	if got := c.nodes[l].raft.LastIndex(); got != last+holdMax {
		t.Fatalf("log grew by %d entries, want the %d held before the last", got-last, holdMax)
	}
	if err := st.Commit(ctx, sessionBatch("other")); err != nil {
		t.Fatal(err)
	}
	if err := waits[holdMax](); err != nil {
		t.Fatal(err)
	}
}

// A held NoSync entry waits while an entry of the member is in flight,
// then holdFor after the latest outcome (or after it was held, whichever
// is later), never longer than holdLimit times holdFor in all.
func TestNoSyncHoldWaitsForEntriesInFlight(t *testing.T) {
	s := &replStore{}
	now := time.Since(epoch)
	s.heldSince = now
	s.lastOutcome.Store(int64(now - time.Hour))
	if got := s.holdLeft(); got <= holdFor-time.Millisecond || got > holdFor {
		t.Errorf("nothing in flight, held just now: %v left, want about holdFor (%v)", got, holdFor)
	}
	s.inflight.Store(1)
	s.heldSince = now - 5*holdFor
	if got := s.holdLeft(); got != holdFor {
		t.Errorf("an entry in flight: %v left, want holdFor (%v) before looking again", got, holdFor)
	}
	s.inflight.Store(0)
	s.lastOutcome.Store(int64(time.Since(epoch)))
	if got := s.holdLeft(); got <= holdFor-time.Millisecond || got > holdFor {
		t.Errorf("answered just now: %v left, want about holdFor (%v)", got, holdFor)
	}
	s.lastOutcome.Store(int64(now - 2*holdFor))
	if got := s.holdLeft(); got != 0 {
		t.Errorf("held and answered more than holdFor ago: %v left, want 0", got)
	}
	s.inflight.Store(1)
	s.heldSince = now - holdLimit*holdFor
	if got := s.holdLeft(); got != 0 {
		t.Errorf("held holdLimit times holdFor with an entry in flight: %v left, want 0", got)
	}
	s.heldSince = now - (holdLimit-1)*holdFor - holdFor/2
	if got := s.holdLeft(); got <= 0 || got > holdFor/2 {
		t.Errorf("half a holdFor before the limit: %v left, want at most %v", got, holdFor/2)
	}
}

// Followers decode entries into memory they reuse from one ApplyBatch to
// the next (fsm.dec, fsm.batches): a pipelined fan-out, entries of every
// shape and a refused entry among them leave every member with exactly the
// leader's queues, entry by entry.
func TestFollowersDecodeIntoReusedMemory(t *testing.T) {
	c := newTestCluster(t, 3, fastTiming)
	l := c.leader()
	st := c.nodes[l].Store()
	ctx := context.Background()
	const sessions = 30
	setup := &store.Batch{}
	for s := range sessions {
		setup.PutSession(&store.Session{ClientID: fmt.Sprintf("s%d", s), ProtocolVersion: 5, ExpiryInterval: 3600})
	}
	if err := st.Commit(ctx, setup); err != nil {
		t.Fatal(err)
	}
	var waits []func() error
	seq := make([]uint64, sessions)
	for g := range 60 {
		b := &store.Batch{}
		for m := range 1 + g%4 { // 1 to 4 messages an entry, each to a different subset
			id := st.NextMessageID()
			b.PutMessage(&store.Message{ID: id, Topic: fmt.Sprintf("t/%d", g), Payload: []byte(fmt.Sprintf("%d.%d", g, m)), QoS: byte(1 + m%2)})
			for s := (g + m) % 3; s < sessions; s += 1 + m {
				seq[s]++
				e := &store.QueueEntry{Seq: seq[s], MessageID: id, QoS: byte(1 + m%2), Retain: g%5 == 0, PacketID: uint16(g)}
				if s%4 == 0 {
					e.SubscriptionIDs = []uint32{uint32(s), uint32(g)}
				}
				b.Enqueue(fmt.Sprintf("s%d", s), e)
			}
		}
		if g%7 == 3 && seq[1] > 1 {
			b.Dequeue("s1", seq[1]-1)
		}
		w, err := st.(store.Pipeliner).CommitNoWait(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		waits = append(waits, w)
		if g == 30 { // refused alike everywhere, between accepted entries
			bad := &store.Batch{}
			bad.Enqueue("nobody", &store.QueueEntry{Seq: 1, MessageID: 1 << 40})
			w, err := st.(store.Pipeliner).CommitNoWait(ctx, bad)
			if err != nil {
				t.Fatal(err)
			}
			waits = append(waits, func() error {
				if err := w(); !errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("refused entry: err = %w, want ErrNotFound", err)
				}
				return nil
			})
		}
	}
	for _, w := range waits {
		if err := w(); err != nil {
			t.Fatal(err)
		}
	}
	dump := func(st store.Store) string {
		var sb strings.Builder
		for s := range sessions {
			if err := st.ReadQueue(fmt.Sprintf("s%d", s), 0, 0, func(e store.QueueEntry, m *store.Message) bool {
				fmt.Fprintf(&sb, "s%d %+v %s %q q%d\n", s, e, m.Topic, m.Payload, m.QoS)
				return true
			}); err != nil {
				t.Fatal(err)
			}
		}
		return sb.String()
	}
	want := dump(st)
	if strings.Count(want, "\n") < 500 {
		t.Fatalf("the leader holds only %d entries", strings.Count(want, "\n"))
	}
	for i, n := range c.nodes {
		if i == l {
			continue
		}
		waitApplied(t, n, c.nodes[l])
		if got := dump(n.Store()); got != want {
			t.Errorf("follower %d's queues differ from the leader's", i)
		}
		if n.fsm.decoded.Load() == 0 {
			t.Errorf("follower %d decoded nothing", i)
		}
	}
}

// After ApplyBatch no batch of the FSM refers to what it decoded: the
// decoder's memory is reused by the next call.
func TestFSMRecycleDropsDecodedOps(t *testing.T) {
	f := &fsm{batches: make([]store.Batch, 3)}
	for i := range f.batches {
		f.batches[i].Dequeue("c", uint64(i+1))
		f.batches[i].NoSync = true
	}
	f.recycle()
	for i, b := range f.batches {
		if b.Ops != nil || b.NoSync {
			t.Fatalf("batch %d after recycle: %+v", i, b)
		}
	}
}

// An entry in a newer format than this build reads (a newer leader's,
// during a rolling upgrade) stops the member instead of being applied as
// an empty batch: nothing from it on is applied, its store stays before
// it (a build that reads it replays it), and a restart stops again there.
func TestNewerFormatEntryStopsTheMember(t *testing.T) {
	dir := t.TempDir()
	st := openSingle(t, dir)
	n := st.(nodeStore).n
	ctx := context.Background()
	if err := st.Commit(ctx, sessionBatch("dev")); err != nil {
		t.Fatal(err)
	}
	if err := st.Commit(ctx, enqueueBatch(st, "dev", 1, "before")); err != nil {
		t.Fatal(err)
	}
	good, err := enqueueBatch(st, "dev", 2, "after").MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	newer := n.raft.Apply([]byte{0xFE, 0, 0}, 5*time.Second)
	after := n.raft.Apply(good, 5*time.Second)
	if err := newer.Error(); err != nil {
		t.Fatal(err)
	}
	if r, _ := newer.Response().(error); !errors.Is(r, errStopped) {
		t.Fatalf("the newer entry answered %v, want errStopped", r)
	}
	if err := after.Error(); err == nil {
		if r, _ := after.Response().(error); !errors.Is(r, errStopped) {
			t.Fatalf("the entry after it answered %v, want errStopped (not applied)", r)
		}
	}
	stopped := newer.Index()
	waitStopped(t, n, "the member")
	if err := n.Err(); err == nil || !errors.Is(err, store.ErrNewerFormat) || !strings.Contains(err.Error(), fmt.Sprintf("log entry %d", stopped)) {
		t.Fatalf("member error %v, want one naming entry %d and a newer format", err, stopped)
	}
	_ = n.Close()
	ps, err := pebblestore.Open(filepath.Join(dir, "store"), pebblestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	applied := ps.AppliedIndex()
	got := payloads(t, ps, "dev")
	_ = ps.Close()
	if applied >= stopped || len(got) != 1 || got[0] != "before" {
		t.Fatalf("store applied %d (the newer entry is %d), queue %q: want it before the entry, with only \"before\"", applied, stopped, got)
	}
	// The same build stops at the same entry again when restarted.
	again := openSingleNoWait(t, dir)
	waitStopped(t, again, "the restarted member")
	if err := again.Err(); !errors.Is(err, store.ErrNewerFormat) {
		t.Fatalf("restarted member: %v, want the newer format again", err)
	}
	_ = again.Close()
}

// waitStopped waits until the member n (named what) has stopped.
func waitStopped(t *testing.T, n *Node, what string) {
	t.Helper()
	poll.Wait(t, 20*time.Second, 10*time.Millisecond, what+" to stop", func() bool {
		select {
		case <-n.Done():
			return true
		default:
			return false
		}
	})
}
