package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/bollard-io/bollard/broker/store"
	"github.com/bollard-io/bollard/test/poll"
)

// fastFormatCheck makes leaders ask the members every 50 ms during t.
func fastFormatCheck(t *testing.T) {
	old := formatCheck
	formatCheck = 50 * time.Millisecond
	t.Cleanup(func() { formatCheck = old })
}

// A format query is answered, authenticated, with the member's ID and
// format; a stranger's query or a peer that does not answer is an error.
func TestFormatQuery(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := newStreamLayer(ln, testSecret, quiet, formatInfo{id: "m7", reads: 9})
	t.Cleanup(func() { _ = s.Close(); s.wait() })
	dialer := &streamLayer{secret: testSecret, log: quiet}
	fi, err := dialer.queryFormat(raft.ServerAddress(ln.Addr().String()), time.Second)
	if err != nil || fi.id != "m7" || fi.reads != 9 {
		t.Fatalf("query: %+v %v, want m7 reading 9", fi, err)
	}
	stranger := &streamLayer{secret: []byte(strings.Repeat("x", MinSecretSize)), log: quiet}
	if _, err := stranger.queryFormat(raft.ServerAddress(ln.Addr().String()), time.Second); err == nil {
		t.Fatal("a stranger's query was answered")
	}
	// A peer that refuses the query (a build that predates it closes the
	// connection) is an error, never a format.
	old := earlierBuild(t)
	if _, err := dialer.queryFormat(raft.ServerAddress(old), time.Second); !errors.Is(err, errNoFormatAnswer) {
		t.Fatalf("a peer that closed the connection: %v, want errNoFormatAnswer", err)
	}
	// Raft's connections still pass.
	c, err := dialer.Dial(raft.ServerAddress(ln.Addr().String()), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
}

// earlierBuild listens as a build that predates format queries does: it
// reads the opening, finds it is not Raft's, and closes. It returns its
// address.
func earlierBuild(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			hello := make([]byte, len(handshakeMagic)+nonceSize)
			if _, err := io.ReadFull(c, hello); err == nil && string(hello[:len(handshakeMagic)]) == handshakeMagic {
				panic("earlierBuild: a Raft connection")
			}
			_ = c.Close()
		}
	}()
	return ln.Addr().String()
}

// entryVersions returns the version byte of every batch entry in n's log
// from index from on.
func entryVersions(t *testing.T, n *Node, from uint64) []byte {
	t.Helper()
	last, err := n.logs.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	for i := from; i <= last; i++ {
		var l raft.Log
		if err := n.logs.GetLog(i, &l); err != nil {
			t.Fatal(err)
		}
		if l.Type == raft.LogCommand && len(l.Data) > 0 {
			if _, ok := store.ParseFormatEntry(l.Data); !ok {
				out = append(out, l.Data[0])
			}
		}
	}
	return out
}

// commitFanout commits a session for each of sessions (first call) and
// msgs messages queued for all of them, as one entry.
func commitFanout(t *testing.T, st store.Store, sessions int, msgs int, seq *uint64) {
	t.Helper()
	ctx := context.Background()
	b := &store.Batch{}
	if *seq == 0 {
		for s := range sessions {
			b.PutSession(&store.Session{ClientID: fmt.Sprintf("s%d", s), ProtocolVersion: 5, ExpiryInterval: 3600})
		}
	}
	for range msgs {
		*seq++
		id := st.NextMessageID()
		b.PutMessage(&store.Message{ID: id, Topic: "t", Payload: []byte(fmt.Sprint(*seq)), QoS: 1})
		for s := range sessions {
			b.Enqueue(fmt.Sprintf("s%d", s), &store.QueueEntry{Seq: *seq, MessageID: id, QoS: 1})
		}
	}
	if err := st.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
}

// dumpQueues describes the queues of sessions s0..s(n-1) in st.
func dumpQueues(t *testing.T, st store.Store, n int) string {
	t.Helper()
	var sb strings.Builder
	for s := range n {
		if err := st.ReadQueue(fmt.Sprintf("s%d", s), 0, 0, func(e store.QueueEntry, m *store.Message) bool {
			fmt.Fprintf(&sb, "s%d %+v %q\n", s, e, m.Payload)
			return true
		}); err != nil {
			t.Fatal(err)
		}
	}
	return sb.String()
}

// leadElsewhere returns the serving leader of c, after moving leadership
// from member not to m0 if needed.
func leadElsewhere(t *testing.T, c *testCluster, not int) int {
	t.Helper()
	moved := false
	askLeader(t, c, func(l int) error {
		if moved = l == not; moved {
			return c.nodes[l].TransferLeadershipTo("m0")
		}
		return nil
	})
	if !moved {
		return c.leader()
	}
	poll.Wait(t, 20*time.Second, 10*time.Millisecond, "m0 to serve", func() bool {
		s, _ := c.nodes[0].State()
		return s.Serving
	})
	return 0
}

// A cluster with a member that reads only format 1 (an earlier build)
// keeps writing format 1; once that member reads format 2 (upgraded and
// restarted), the leader raises the format, writes version 2 entries, and
// every member's store ends equal.
func TestMixedFormatCluster(t *testing.T) {
	fastFormatCheck(t)
	reads := map[int]uint8{2: 1}
	c := newTestClusterWith(t, 3, fastTiming, func(i int, cfg *Config) { cfg.readsFormat = reads[i] })
	l := leadElsewhere(t, c, 2)
	const sessions = 20
	var seq uint64
	for range 5 {
		commitFanout(t, c.nodes[l].Store(), sessions, 3, &seq)
	}
	poll.Wait(t, 20*time.Second, 10*time.Millisecond, "the leader to find member m2 reading format 1", func() bool {
		return strings.Contains(c.logs[l].String(), "member m2 reads format 1")
	})
	for i, n := range c.nodes {
		if f := n.st.writeFormat(); f != 1 {
			t.Fatalf("member %d writes format %d with a member reading only 1", i, f)
		}
		if i != l {
			waitApplied(t, n, c.nodes[l])
		}
	}
	for _, v := range entryVersions(t, c.nodes[l], 1) {
		if v != 1 {
			t.Fatalf("an entry of version %d in the log with a member reading only 1", v)
		}
	}
	if s := c.nodes[l].Status(); s.EntryFormat != 1 || s.ReadsFormat != int(store.BatchFormat) {
		t.Fatalf("leader status: entry format %d, reads %d", s.EntryFormat, s.ReadsFormat)
	}

	// Member 2 is upgraded: restarted reading this build's format.
	c.stop(2)
	delete(reads, 2)
	c.start(2)
	poll.Wait(t, 20*time.Second, 10*time.Millisecond, "every member to apply format 2", func() bool {
		for _, n := range c.nodes {
			if n.st.writeFormat() != 2 {
				return false
			}
		}
		return true
	})
	l = c.leader()
	last, _ := c.nodes[l].logs.LastIndex()
	for range 5 {
		commitFanout(t, c.nodes[l].Store(), sessions, 3, &seq)
	}
	vs := entryVersions(t, c.nodes[l], last+1)
	if len(vs) < 5 || strings.Trim(string(vs), "\x02") != "" {
		t.Fatalf("entries after the format entry have versions %v, want 2s", vs)
	}
	want := dumpQueues(t, c.nodes[l].Store(), sessions)
	if got := strings.Count(want, "\n"); got != sessions*30 {
		t.Fatalf("the leader holds %d queue entries, want %d", got, sessions*30)
	}
	for i, n := range c.nodes {
		if i == l {
			continue
		}
		waitApplied(t, n, c.nodes[l])
		if got := dumpQueues(t, n.Store(), sessions); got != want {
			t.Errorf("member %d's queues differ from the leader's", i)
		}
		if n.fsm.decoded.Load() == 0 {
			t.Errorf("member %d decoded nothing", i)
		}
	}
	// The format survives a restart.
	c.stop(0)
	c.start(0)
	if f := c.nodes[0].st.writeFormat(); f != 2 {
		t.Fatalf("restarted member writes format %d", f)
	}
}

// A member that cannot read format 2 (it answered that it does, then was
// swapped for an earlier build) stops at the format entry with an error
// saying so, and applies nothing past it; the others go on in format 2.
func TestFormatEntryStopsMemberThatCannotReadIt(t *testing.T) {
	fastFormatCheck(t)
	c := newTestClusterWith(t, 3, fastTiming, func(i int, cfg *Config) {
		if i == 2 {
			cfg.readsFormat, cfg.announceFormat = 1, 2
		}
	})
	l := leadElsewhere(t, c, 2) // it would never raise the format it cannot read
	old := c.nodes[2]
	waitStopped(t, old, "the member reading format 1")
	err := old.Err()
	if !errors.Is(err, store.ErrNewerFormat) || !strings.Contains(err.Error(), "raises the cluster's log entry format to 2") {
		t.Fatalf("member error %v, want the format entry named", err)
	}
	var formatIndex uint64
	lead := c.nodes[l]
	last, _ := lead.logs.LastIndex()
	for i := uint64(1); i <= last; i++ {
		var e raft.Log
		if lead.logs.GetLog(i, &e) == nil {
			if _, ok := store.ParseFormatEntry(e.Data); ok {
				formatIndex = i
			}
		}
	}
	if formatIndex == 0 {
		t.Fatal("no format entry in the leader's log")
	}
	if a := old.st.cur().AppliedIndex(); a >= formatIndex {
		t.Fatalf("the member applied up to %d, the format entry is %d", a, formatIndex)
	}
	if f := old.st.cur().ClusterFormat(); f != 1 {
		t.Fatalf("the stopped member's store records format %d", f)
	}
	var seq uint64
	commitFanout(t, lead.Store(), 5, 3, &seq) // the two others are a majority
	if f := lead.st.writeFormat(); f != 2 {
		t.Fatalf("the leader writes format %d", f)
	}
	if a := old.st.cur().AppliedIndex(); a >= formatIndex {
		t.Fatalf("the stopped member applied up to %d past the format entry %d", a, formatIndex)
	}
}

// Once the cluster writes format 2, a member that does not read it is not
// added; one that does is.
func TestAddMemberRefusesAnEarlierFormat(t *testing.T) {
	fastFormatCheck(t)
	c := newTestCluster(t, 1, fastTiming)
	l := c.leader()
	poll.Wait(t, 20*time.Second, 10*time.Millisecond, "a lone member to raise the format", func() bool {
		return c.nodes[l].st.writeFormat() == 2
	})
	// A member that cannot be reached (not started yet) is asked again
	// until the request's deadline: a timeout, not a refusal.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	err := c.nodes[l].AddMember(ctx, Member{ID: "absent", RaftAddress: freeAddrs(t, 1)[0]})
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrMemberFormat) {
		t.Fatalf("adding an unreachable member: %v, want a deadline", err)
	}
	// A member of a build that predates format queries closes the
	// connection at the question: refused at once.
	old := earlierBuild(t)
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	err = c.nodes[l].AddMember(ctx, Member{ID: "old", RaftAddress: old})
	cancel()
	if !errors.Is(err, ErrMemberFormat) {
		t.Fatalf("adding a member of an earlier build: %v, want ErrMemberFormat", err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, reads := range []uint8{1, 0} {
		m := Member{ID: fmt.Sprintf("new%d", reads), RaftAddress: freeAddrs(t, 1)[0]}
		n, err := Open(Config{ID: m.ID, Dir: t.TempDir(), Bind: m.RaftAddress, Members: append([]Member{m}, c.members...),
			Secret: testSecret, Timing: fastTiming, Logger: quiet, readsFormat: reads})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = n.Close() })
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err = c.nodes[l].AddMember(ctx, m)
		cancel()
		if reads == 1 {
			if !errors.Is(err, ErrMemberFormat) {
				t.Fatalf("adding a member reading format 1: %v, want ErrMemberFormat", err)
			}
			if len(c.nodes[l].Status().Members) != 1 {
				t.Fatal("the refused member is in the configuration")
			}
			continue
		}
		if err != nil {
			t.Fatalf("adding a member reading format 2: %v", err)
		}
		waitApplied(t, n, c.nodes[l])
		if f := n.st.writeFormat(); f != 2 {
			t.Fatalf("the new member applied format %d", f)
		}
	}
}

// A member that joins through a snapshot, never seeing the format entry
// (compacted away), learns the cluster's format from the snapshot's store.
func TestFormatTravelsInSnapshots(t *testing.T) {
	timing := fastTiming
	timing.SnapshotEvery, timing.TrailingLogs = 20, 5
	c := newTestCluster(t, 1, timing)
	l := c.leader() // a lone member raises the format at once
	commitQueue(t, c.nodes[l].Store(), "dev", 60, strconv.Itoa)
	if err := c.nodes[l].raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	if first, _ := c.nodes[l].logs.FirstIndex(); first <= 3 {
		t.Fatalf("leader log starts at %d: the format entry was not compacted", first)
	}
	m := Member{ID: "new", RaftAddress: freeAddrs(t, 1)[0]}
	n, err := Open(Config{ID: m.ID, Dir: t.TempDir(), Bind: m.RaftAddress, Members: append([]Member{m}, c.members...),
		Secret: testSecret, Timing: timing, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.nodes[l].AddMember(ctx, m); err != nil {
		t.Fatal(err)
	}
	waitApplied(t, n, c.nodes[l])
	if n.Status().LastSnapshotIndex == 0 {
		t.Fatal("the new member caught up without the snapshot")
	}
	if f := n.st.writeFormat(); f != 2 {
		t.Fatalf("the member that joined through a snapshot writes format %d", f)
	}
}
