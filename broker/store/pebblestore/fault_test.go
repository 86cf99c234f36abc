package pebblestore

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/bollard-io/bollard/broker/store"
)

// seed commits a session "a" with two queued messages and a retained one.
func seed(t *testing.T, s store.Store) {
	t.Helper()
	var b store.Batch
	b.PutSession(&store.Session{ClientID: "a", CreatedAt: time.Unix(1, 0)})
	b.PutSubscription("a", &store.Subscription{Filter: "t/#", QoS: 1})
	b.PutSession(&store.Session{ClientID: "b", CreatedAt: time.Unix(1, 0)})
	// Message 1 is stored inline in a's run, message 2 (also queued for b)
	// under m/ with a reference count.
	for i := uint64(1); i <= 2; i++ {
		b.PutMessage(&store.Message{ID: i, Topic: "t/x", Payload: []byte("hello")})
		b.Enqueue("a", &store.QueueEntry{Seq: i, MessageID: i, QoS: 1})
	}
	b.Enqueue("b", &store.QueueEntry{Seq: 1, MessageID: 2, QoS: 1})
	b.PutRetained(&store.Message{ID: 3, Topic: "t/r", Payload: []byte("r")})
	if err := s.Commit(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
}

// rawSet writes key=value straight into the Pebble database in dir.
func rawSet(t *testing.T, dir string, key, value []byte) {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{Logger: logger{quiet}})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Set(key, value, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRejectsCorruptValues(t *testing.T) {
	cases := map[string][]byte{
		"s/a":                        {valueVersion, 200}, // string length beyond the value
		string(queueKey("a", 1)):     {valueVersion, 1},   // truncated entry
		string(refCountKey(1)):       {9, 1, 1},           // unknown value version
		string(queueKey("ghost", 1)): appendRun(nil, 1, []qent{{QueueEntry: store.QueueEntry{Seq: 1, MessageID: 2}, size: 5}}),
		string(queueKey("a", 2)):     appendRun(nil, 2, []qent{{QueueEntry: store.QueueEntry{Seq: 2, MessageID: 2}, size: 5}}),                 // overlaps run 1
		string(queueKey("b", 1)):     appendRun(nil, 1, []qent{{QueueEntry: store.QueueEntry{Seq: 1, MessageID: 2}, size: 5, mraw: []byte{}}}), // b's reference gone
		string(queueKey("b", 7)):     {valueVersion, 0},                                                                                        // empty run
		string(refCountKey(2)):       appendRefCount(nil, 7, 5),                                                                                // counts no longer add up
		"r/t/r":                      {},
		"l/a":                        {valueVersion, 0xff}, // truncated uvarint
		string(messageKey(9)):        {valueVersion},       // message without count
	}
	for key, value := range cases {
		t.Run(strings.ReplaceAll(key, "/", "_"), func(t *testing.T) {
			dir := t.TempDir()
			s := openT(t, dir, Options{})
			seed(t, s)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			rawSet(t, dir, []byte(key), value)
			_, err := Open(dir, Options{Logger: quiet})
			if !errors.Is(err, store.ErrCorrupt) {
				t.Fatalf("Open after corrupting %q: err = %v, want ErrCorrupt", key, err)
			}
			t.Logf("%v", err)
		})
	}
}

func TestReadsReportCorruptValues(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	seed(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Values only decoded on demand: subscriptions and message bodies.
	rawSet(t, dir, subKey("a", "t/#"), []byte{valueVersion, 1})
	rawSet(t, dir, messageKey(2), []byte{valueVersion, 2, 0, 0})
	s = openT(t, dir, Options{})
	defer s.Close()
	err := s.LoadSessions(func(*store.SessionState) error { return nil })
	if !errors.Is(err, store.ErrCorrupt) || !strings.Contains(err.Error(), "u/a") {
		t.Fatalf("LoadSessions: err = %v, want ErrCorrupt naming the key", err)
	}
	n := 0
	err = s.ReadQueue("a", 0, 0, func(store.QueueEntry, *store.Message) bool { n++; return true })
	if !errors.Is(err, store.ErrCorrupt) || n != 0 {
		t.Fatalf("ReadQueue: err = %v after %d entries, want ErrCorrupt", err, n)
	}
}

// TestReadReportsCorruptInlineMessage: an inline message is decoded only
// when its entry is read, and a damaged one is reported there.
func TestReadReportsCorruptInlineMessage(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	seed(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	run := appendRun(nil, 1, []qent{
		{QueueEntry: store.QueueEntry{Seq: 1, MessageID: 1, QoS: 1}, size: 8, mraw: []byte{1, 200}},
		{QueueEntry: store.QueueEntry{Seq: 2, MessageID: 2, QoS: 1}, size: 8},
	})
	rawSet(t, dir, queueKey("a", 1), run)
	s = openT(t, dir, Options{})
	defer s.Close()
	err := s.ReadQueue("a", 0, 0, func(store.QueueEntry, *store.Message) bool { return true })
	if !errors.Is(err, store.ErrCorrupt) || !strings.Contains(err.Error(), "inline message") {
		t.Fatalf("ReadQueue: err = %v, want ErrCorrupt for the inline message", err)
	}
}

func TestDecodersNeverPanic(t *testing.T) {
	pf := byte(1)
	m := &store.Message{ID: 1, Topic: "t", Payload: []byte("p"), Props: store.Properties{PayloadFormat: &pf,
		UserProperties: []store.UserProperty{{Key: "k", Value: "v"}}}, PublishedAt: time.Unix(5, 0)}
	values := map[string][]byte{
		"session": encodeSession(&store.Session{ClientID: "a", Will: &store.Will{Message: *m}}),
		"run":     testRun(),
		"message": encodeMessageValue(m),
		"sub":     encodeSubscription(&store.Subscription{Filter: "f", ID: 4}),
		"refs":    appendRefCount(nil, 2, 3),
	}
	decoders := map[string]func(v []byte) error{
		"session": func(v []byte) error { _, err := decodeSession([]byte("s/a"), v); return err },
		"run":     func(v []byte) error { _, _, err := decodeRun([]byte("q"), 1, v, true); return err },
		"message": func(v []byte) error { _, err := decodeMessageValue([]byte("m"), v); return err },
		"sub":     func(v []byte) error { _, err := decodeSubscription([]byte("u"), "f", v); return err },
		"refs":    func(v []byte) error { _, _, err := decodeRefCount([]byte("c"), v); return err },
	}
	for name, v := range values {
		dec := decoders[name]
		if err := dec(v); err != nil {
			t.Fatalf("%s: full value: %v", name, err)
		}
		for i := range len(v) {
			if err := dec(v[:i]); !errors.Is(err, store.ErrCorrupt) {
				t.Fatalf("%s truncated to %d bytes: err = %v", name, i, err)
			}
		}
		if err := dec(append(v, 0)); !errors.Is(err, store.ErrCorrupt) {
			t.Fatalf("%s with a trailing byte: err = %v", name, err)
		}
	}
}

// testRun is a run of a shared entry and an inline one.
func testRun() []byte {
	m := &store.Message{ID: 2, Topic: "t", Payload: []byte("p")}
	return appendRun(nil, 1, []qent{
		{QueueEntry: store.QueueEntry{Seq: 1, MessageID: 1, SubscriptionIDs: []uint32{1, 2}, State: store.Sent, PacketID: 9}, size: 3},
		{QueueEntry: store.QueueEntry{Seq: 3, MessageID: 2, QoS: 2, Retain: true}, size: m.Size(), mraw: appendInline(nil, m)},
	})
}

func FuzzDecode(f *testing.F) {
	f.Add(encodeMessageValue(&store.Message{ID: 1, Topic: "t", Payload: []byte("p")}))
	f.Add(testRun())
	f.Add(encodeSession(&store.Session{Will: &store.Will{}}))
	f.Fuzz(func(t *testing.T, v []byte) {
		_, _ = decodeSession([]byte("s/a"), v)
		if r, _, err := decodeRun([]byte("q"), 1, v, true); err == nil {
			for i := range r.ents {
				_, _ = r.ents[i].message([]byte("q"))
			}
		}
		_, _, _ = decodeRun([]byte("q"), 1, v, false)
		_, _ = decodeMessageValue([]byte("m"), v)
		_, _ = decodeSubscription([]byte("u"), "f", v)
		_, _, _ = decodeRefCount([]byte("c"), v)
	})
}

func TestFormatVersion(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rawSet(t, dir, keyVersion, binary.BigEndian.AppendUint32(nil, formatVersion+1))
	if _, err := Open(dir, Options{Logger: quiet}); !errors.Is(err, ErrFormatVersion) {
		t.Fatalf("Open of a newer format: err = %v", err)
	}
	dir = t.TempDir()
	rawSet(t, dir, []byte("s/a"), encodeSession(&store.Session{}))
	if _, err := Open(dir, Options{Logger: quiet}); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("Open of data without a version: err = %v", err)
	}
}

func TestOpenLocksTheDirectory(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	defer s.Close()
	if _, err := Open(dir, Options{Logger: quiet}); err == nil {
		t.Fatal("second Open of the same directory succeeded")
	}
}

// storeFiles returns the store's files whose names contain substr.
func storeFiles(t *testing.T, dir, substr string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.Contains(e.Name(), substr) {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out
}

func TestOpenRejectsDamagedFiles(t *testing.T) {
	damage := map[string]func(t *testing.T, dir string){
		"truncated MANIFEST": func(t *testing.T, dir string) {
			for _, f := range storeFiles(t, dir, "MANIFEST") {
				if err := os.Truncate(f, 10); err != nil {
					t.Fatal(err)
				}
			}
		},
		// Damage in the first block of the WAL; see TestTornWALTailRecovers
		// for damage at the tail.
		"flipped bytes inside the WAL": func(t *testing.T, dir string) {
			for _, f := range storeFiles(t, dir, ".log") {
				data, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				for i := 1024; i < 1032 && i < len(data); i++ {
					data[i] ^= 0x5a
				}
				if err := os.WriteFile(f, data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		},
	}
	for name, fn := range damage {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s := openT(t, dir, Options{})
			seed(t, s)
			// Over 32 KiB of WAL: Pebble tells corruption from a torn
			// tail only when a later block proves the damaged bytes were
			// synced.
			for i := uint64(1); i <= 100; i++ {
				var b store.Batch
				b.PutMessage(&store.Message{ID: 10 + i, Topic: "t", Payload: make([]byte, 1024)})
				b.Enqueue("a", &store.QueueEntry{Seq: 2 + i, MessageID: 10 + i})
				if err := s.Commit(context.Background(), &b); err != nil {
					t.Fatal(err)
				}
			}
			// Leave the data in the WAL: abandon the store without Close,
			// as a crash would (the test process keeps the lock; release it).
			simulateCrash(t, s)
			fn(t, dir)
			s2, err := Open(dir, Options{Logger: quiet})
			if !errors.Is(err, store.ErrCorrupt) {
				if err == nil {
					t.Fatalf("Open of a damaged store succeeded with %+v", s2.Stats())
				}
				t.Fatalf("Open of a damaged store: err = %v, want ErrCorrupt", err)
			}
			t.Logf("%v", err)
		})
	}
}

// simulateCrash closes the underlying database without the final writes
// of Close; the WAL keeps everything committed.
func simulateCrash(t *testing.T, s *Store) {
	t.Helper()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	if err := s.db.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestTornWALTailRecovers(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	seed(t, s)
	simulateCrash(t, s)
	logs := storeFiles(t, dir, ".log")
	if len(logs) == 0 {
		t.Fatal("no WAL file")
	}
	last := logs[len(logs)-1]
	f, err := os.OpenFile(last, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A torn write: a partial record header at the tail.
	if _, err := f.Write([]byte{0x12, 0x34, 0x56}); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, Options{})
	defer s.Close()
	if st := s.Stats(); st.Messages != 2 || st.Sessions != 2 || st.Retained != 1 {
		t.Fatalf("stats after torn tail = %+v", st)
	}
}

// TestFullDisk makes every WAL write and sync fail, as on a full volume:
// Commit must return an error (never panic), later commits must fail too,
// and the store must reopen with everything acknowledged before.
func TestFullDisk(t *testing.T) {
	for _, mode := range []Durability{Sync, Interval} {
		t.Run(map[Durability]string{Sync: "Sync", Interval: "Interval"}[mode], func(t *testing.T) {
			dir := t.TempDir()
			var full errorfs.Toggle
			full.Injector = errorfs.InjectorFunc(func(op errorfs.Op) error {
				if op.Kind == errorfs.OpFileWrite || isSync(op) {
					return syscall.ENOSPC
				}
				return nil
			})
			s := openT(t, dir, Options{Durability: mode, Interval: time.Millisecond, fs: walFS{FS: vfs.Default, inj: &full}})
			seed(t, s)
			if mode == Interval {
				if err := s.syncWAL(); err != nil {
					t.Fatal(err)
				}
			}
			full.On()
			var b store.Batch
			b.PutSession(&store.Session{ClientID: "lost"})
			err := s.Commit(context.Background(), &b)
			deadline := time.Now().Add(10 * time.Second)
			for mode == Interval && err == nil && time.Now().Before(deadline) {
				err = s.Commit(context.Background(), &b) // the syncer fails the store
				time.Sleep(time.Millisecond)
			}
			if err == nil {
				t.Fatal("commit on a full disk succeeded")
			}
			if err2 := s.Commit(context.Background(), &b); err2 == nil {
				t.Fatal("commit after a failure succeeded")
			}
			t.Logf("commit: %v", err)
			_ = s.Close() // reports the failure
			full.Off()
			s = openT(t, dir, Options{})
			defer s.Close()
			if st := s.Stats(); st.Messages != 2 || st.Retained != 1 {
				t.Fatalf("stats after reopen = %+v", st)
			}
		})
	}
}
