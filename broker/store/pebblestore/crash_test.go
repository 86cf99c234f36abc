package pebblestore

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/store"
)

// crashDirEnv names the store directory of the child process of TestCrash.
const crashDirEnv = "PEBBLESTORE_CRASH_DIR"

const crashWorkers = 8

// TestCrashChild is the child process of TestCrash: it commits batches in
// Sync mode until it is killed, printing each after Commit returned:
//
//	E <session> <seq> <messageID>   entry enqueued (acknowledged)
//	P <session> <seq>               dequeue about to be committed (its
//	                                entry may be gone after the crash)
//	D <session> <seq>               entry dequeued (acknowledged)
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("helper process of TestCrash")
	}
	s, err := Open(dir, Options{Logger: quiet})
	if err != nil {
		fmt.Printf("OPEN-ERROR %v\n", err)
		os.Exit(3)
	}
	queues := make(map[string][]uint64) // live seqs per session, from the store
	for g := range crashWorkers {
		for _, id := range crashSessions(g) {
			_ = s.ReadQueue(id, 0, 0, func(e store.QueueEntry, _ *store.Message) bool {
				queues[id] = append(queues[id], e.Seq)
				return true
			})
		}
	}
	last := make(map[string]uint64)
	if err := s.LoadSessions(func(st *store.SessionState) error { last[st.Session.ClientID] = st.Queue.LastSeq; return nil }); err != nil {
		os.Exit(3)
	}
	var out sync.Mutex
	emit := func(line string) {
		out.Lock()
		defer out.Unlock()
		_, _ = os.Stdout.WriteString(line + "\n")
	}
	for g := range crashWorkers {
		go crashWorker(s, g, last, queues, emit)
	}
	time.Sleep(time.Minute) // killed long before; bounds an orphaned child
	os.Exit(4)
}

func crashSessions(g int) [2]string { return [2]string{fmt.Sprintf("g%da", g), fmt.Sprintf("g%db", g)} }

// crashWorker fans each message out to its two sessions and acknowledges
// (dequeues) the oldest entry of its first session every third batch.
func crashWorker(s *Store, g int, last map[string]uint64, queues map[string][]uint64, emit func(string)) {
	ids := crashSessions(g)
	a, b := ids[0], ids[1]
	seqA, seqB, live := last[a], last[b], queues[a]
	var batch store.Batch
	batch.PutSession(&store.Session{ClientID: a, ExpiryInterval: 60})
	batch.PutSession(&store.Session{ClientID: b, ExpiryInterval: 60})
	if err := s.Commit(context.Background(), &batch); err != nil {
		os.Exit(5)
	}
	for n := 1; ; n++ {
		batch.Reset()
		id := s.NextMessageID()
		seqA++
		seqB++
		batch.PutMessage(&store.Message{ID: id, Topic: "crash", Payload: []byte(strconv.FormatUint(id, 10)), QoS: 1})
		batch.Enqueue(a, &store.QueueEntry{Seq: seqA, MessageID: id, QoS: 1})
		batch.Enqueue(b, &store.QueueEntry{Seq: seqB, MessageID: id, QoS: 1})
		var acked uint64
		if n%3 == 0 && len(live) > 0 {
			acked, live = live[0], live[1:]
			batch.Dequeue(a, acked)
			emit(fmt.Sprintf("P %s %d", a, acked))
		}
		if err := s.Commit(context.Background(), &batch); err != nil {
			emit("COMMIT-ERROR " + err.Error())
			os.Exit(6)
		}
		live = append(live, seqA)
		emit(fmt.Sprintf("E %s %d %d", a, seqA, id))
		emit(fmt.Sprintf("E %s %d %d", b, seqB, id))
		if acked != 0 {
			emit(fmt.Sprintf("D %s %d", a, acked))
		}
	}
}

// TestCrash kills a committing child process with SIGKILL at random points,
// reopens the store and checks that every acknowledged write is there:
// enqueued entries with their messages, and dequeues.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	want := make(map[string]map[uint64]uint64) // session -> seq -> message ID
	gone := make(map[string]map[uint64]bool)
	for round := range 3 {
		killAfter := 50 + rand.IntN(400)
		lines := runCrashChild(t, dir, killAfter)
		for _, l := range lines {
			applyCrashLine(t, l, want, gone)
		}
		t.Logf("round %d: killed after %d acknowledged lines (asked %d)", round, len(lines), killAfter)
		checkCrashStore(t, dir, want, gone)
	}
}

func runCrashChild(t *testing.T, dir string, killAfter int) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(60*time.Second, func() { _ = cmd.Process.Kill() })
	defer timer.Stop()
	var lines []string
	sc := bufio.NewScanner(stdout)
	killed := false
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "OPEN-ERROR") || strings.HasPrefix(l, "COMMIT-ERROR") {
			_ = cmd.Process.Kill()
			t.Fatalf("child: %s", l)
		}
		if l == "" || !strings.Contains("EPD", l[:1]) {
			continue
		}
		lines = append(lines, l) // printed after Commit returned: acknowledged
		if !killed && len(lines) >= killAfter {
			_ = cmd.Process.Kill() // SIGKILL; keep reading what was already printed
			killed = true
		}
	}
	_ = cmd.Wait() // "signal: killed"
	if !killed {
		t.Fatalf("child exited before the kill, after %d lines", len(lines))
	}
	return lines
}

func applyCrashLine(t *testing.T, l string, want map[string]map[uint64]uint64, gone map[string]map[uint64]bool) {
	t.Helper()
	f := strings.Fields(l)
	if len(f) < 3 {
		t.Fatalf("bad line %q", l)
	}
	seq, err := strconv.ParseUint(f[2], 10, 64)
	if err != nil {
		t.Fatalf("bad line %q", l)
	}
	sess := f[1]
	if want[sess] == nil {
		want[sess], gone[sess] = make(map[uint64]uint64), make(map[uint64]bool)
	}
	switch {
	case f[0] == "E" && len(f) == 4:
		id, err := strconv.ParseUint(f[3], 10, 64)
		if err != nil {
			t.Fatalf("bad line %q", l)
		}
		want[sess][seq] = id
	case f[0] == "P":
		delete(want[sess], seq)
	case f[0] == "D":
		delete(want[sess], seq)
		gone[sess][seq] = true
	default:
		t.Fatalf("bad line %q", l)
	}
}

func checkCrashStore(t *testing.T, dir string, want map[string]map[uint64]uint64, gone map[string]map[uint64]bool) {
	t.Helper()
	s, err := Open(dir, Options{Logger: quiet}) // recovery checks counts and decodes every record
	if err != nil {
		t.Fatalf("reopen after SIGKILL: %v", err)
	}
	defer s.Close()
	for sess, entries := range want {
		have := make(map[uint64]uint64)
		err := s.ReadQueue(sess, 0, 0, func(e store.QueueEntry, m *store.Message) bool {
			if string(m.Payload) != strconv.FormatUint(m.ID, 10) || m.ID != e.MessageID {
				t.Errorf("%s seq %d: message %d with payload %q", sess, e.Seq, m.ID, m.Payload)
			}
			have[e.Seq] = e.MessageID
			return true
		})
		if err != nil {
			t.Fatalf("ReadQueue(%s): %v", sess, err)
		}
		for seq, id := range entries {
			if have[seq] != id {
				t.Errorf("%s: acknowledged entry seq %d (message %d) lost", sess, seq, id)
			}
		}
		for seq := range gone[sess] {
			if _, ok := have[seq]; ok {
				t.Errorf("%s: acknowledged dequeue of seq %d undone", sess, seq)
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}
