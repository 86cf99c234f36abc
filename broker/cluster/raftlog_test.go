package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/bollard-io/bollard/broker/lograte"
	"github.com/bollard-io/bollard/test/logcheck"
)

// fakeClock is a settable time for the raft logger.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newFakeClock() *fakeClock           { return &fakeClock{t: time.Unix(1_800_000_000, 0)} }
func testRaftLogger(buf *logcheck.Buffer, clk *fakeClock) *raftLogger {
	return newRaftLogger(slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})),
		&lograte.Limiter{Every: raftLogEvery}, clk.now)
}

// A line of hashicorp/raft is a structured record: its level, its message,
// its arguments as attributes.
func TestRaftLogStructured(t *testing.T) {
	var buf logcheck.Buffer
	l := testRaftLogger(&buf, newFakeClock())
	l.Error("failed to heartbeat to", "peer", raft.ServerAddress("127.0.0.1:7003"),
		"backoff time", 250*time.Millisecond, "error", errors.New("connection refused"))
	l.Named("wal").Warn("odd", "n", 3, "time", time.Second, "dangling")
	recs := buf.MustRecords(t, "")
	if len(recs) != 2 {
		t.Fatalf("got %d records, want 2: %s", len(recs), buf.String())
	}
	want := map[string]any{"level": "ERROR", "msg": "failed to heartbeat to", "logger": "raft",
		"peer": "127.0.0.1:7003", "backoff_time": "250ms", "error": "connection refused"}
	for k, v := range want {
		if recs[0][k] != v {
			t.Errorf("%s = %v, want %v (%v)", k, recs[0][k], v, recs[0])
		}
	}
	if recs[0]["unlogged_before"] != float64(0) {
		t.Errorf("first line: unlogged_before %v", recs[0]["unlogged_before"])
	}
	if r := recs[1]; r["level"] != "WARN" || r["logger"] != "raft.wal" || r["n"] != float64(3) || r["raft_time"] != "1s" || r["extra"] != "dangling" {
		t.Errorf("second record %v", r)
	}
}

// Below the level (warning, as before) nothing is written; the level is
// shared by the loggers derived from one another.
func TestRaftLogLevel(t *testing.T) {
	var buf logcheck.Buffer
	l := testRaftLogger(&buf, newFakeClock())
	d := l.With("node", "m1").Named("net")
	l.Info("entering follower state")
	d.Debug("detail")
	if buf.String() != "" || l.IsInfo() || !l.IsWarn() {
		t.Fatalf("info logged at warning level: %q", buf.String())
	}
	d.SetLevel(hclog.Info)
	l.Info("entering follower state")
	d.Info("listening")
	recs := buf.MustRecords(t, "")
	if len(recs) != 2 || recs[1]["node"] != "m1" || recs[1]["logger"] != "raft.net" {
		t.Fatalf("records %v", recs)
	}
	if got := d.ImpliedArgs(); len(got) != 2 || got[0] != "node" {
		t.Errorf("implied args %v", got)
	}
}

// What a down member makes the leader log, about every 300 ms: the first
// line at once, then one per raftLogEvery with the count of those left
// out, apart for each member and each message.
func TestRaftLogLimitsRepeats(t *testing.T) {
	var buf logcheck.Buffer
	clk := newFakeClock()
	l := testRaftLogger(&buf, clk)
	heartbeat := func(peer string) {
		l.Error("failed to heartbeat to", "peer", raft.ServerAddress(peer), "backoff time", 250*time.Millisecond,
			"error", fmt.Errorf("dial tcp %s: connect: connection refused", peer))
	}
	for range 100 { // 30 s
		heartbeat("127.0.0.1:7003")
		heartbeat("127.0.0.1:7002")
		l.Warn("failed to contact", "server-id", raft.ServerID("c"), "time", time.Second)
		clk.add(300 * time.Millisecond)
	}
	counts := map[string][]any{}
	for _, r := range buf.MustRecords(t, "") {
		k := fmt.Sprintf("%v %v %v", r["msg"], r["peer"], r["server-id"])
		counts[k] = append(counts[k], r["unlogged_before"])
	}
	// 0, 10.2, 20.4 s: three lines each; 33 and 33 left out between them.
	for _, k := range []string{"failed to heartbeat to 127.0.0.1:7003 <nil>", "failed to heartbeat to 127.0.0.1:7002 <nil>", "failed to contact <nil> c"} {
		got := fmt.Sprint(counts[k])
		if got != "[0 33 33]" {
			t.Errorf("%s: unlogged_before %s, want [0 33 33]", k, got)
		}
	}
	if len(counts) != 3 {
		t.Errorf("lines %v", counts)
	}
}

// A standard library logger made from it keeps the levels of its lines'
// prefixes.
func TestRaftLogStandardWriter(t *testing.T) {
	var buf logcheck.Buffer
	l := testRaftLogger(&buf, newFakeClock())
	std := l.StandardLogger(nil)
	std.Print("[ERROR] raft-net: failed to accept connection: err=closed")
	std.Print("[INFO] fine")
	fmt.Fprint(l.StandardWriter(&hclog.StandardLoggerOptions{ForceLevel: hclog.Warn}), "forced\n")
	recs := buf.MustRecords(t, "")
	if len(recs) != 2 || recs[0]["level"] != "ERROR" || recs[0]["msg"] != "raft-net: failed to accept connection: err=closed" ||
		recs[1]["level"] != "WARN" || recs[1]["msg"] != "forced" {
		t.Fatalf("records %v", recs)
	}
}

// A real leader with a member down logs the failed heartbeats about it
// once, not every few hundred milliseconds.
func TestRaftLogDownMember(t *testing.T) {
	c := newTestCluster(t, 3, fastTiming)
	lead := c.leader()
	down := (lead + 1) % 3
	c.stop(down)
	time.Sleep(3 * time.Second)
	log := c.logs[lead].String()
	peer := "peer=" + c.members[down].RaftAddress
	var heartbeats int
	for line := range strings.SplitSeq(log, "\n") {
		if strings.Contains(line, `msg="failed to heartbeat to"`) && strings.Contains(line, peer) {
			heartbeats++
		}
	}
	if heartbeats != 1 {
		t.Fatalf("%d lines of failed heartbeats to %s in 3 s, want 1:\n%s", heartbeats, c.members[down].ID, log)
	}
	// No line names a key twice (the member's own "member" and the one it
	// is about were once both "member": a log shipper keeps one of them).
	for line := range strings.SplitSeq(log, "\n") {
		if k := repeatedKey(line); k != "" {
			t.Errorf("key %q twice in %s", k, line)
		}
	}
}

// repeatedKey returns a key that a slog text line has twice, or "".
func repeatedKey(line string) string {
	seen := map[string]bool{}
	for i := 0; i < len(line); {
		eq := strings.IndexByte(line[i:], '=')
		if eq < 0 {
			return ""
		}
		key := line[i : i+eq]
		if seen[key] {
			return key
		}
		seen[key] = true
		i += eq + 1
		if i < len(line) && line[i] == '"' { // a quoted value: up to the unescaped quote
			for i++; i < len(line) && line[i] != '"'; i++ {
				if line[i] == '\\' {
					i++
				}
			}
			i++
		} else {
			for i < len(line) && line[i] != ' ' {
				i++
			}
		}
		for i < len(line) && line[i] == ' ' {
			i++
		}
	}
	return ""
}
