package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/raft"
)

// logStore is Raft's log and stable store on a Pebble database of its own
// (dir/raft/log). Appends are synced: one WAL fsync covers every entry of
// a StoreLogs call, where a B+tree store (raft-boltdb) writes pages and
// syncs twice. Entries are keyed by big-endian index, so a range of the
// log is a range of keys and truncation is one range deletion.
type logStore struct {
	db *pebble.DB

	mu          sync.Mutex // guards the cached bounds
	first, last uint64     // 0, 0 when empty
}

var (
	_ raft.LogStore    = (*logStore)(nil)
	_ raft.StableStore = (*logStore)(nil)
)

const (
	logPrefix    = 'l' // l<index:8> -> entry
	stablePrefix = 's' // s<key>     -> value
	logKeyLen    = 9
	entryVersion = 1
)

// errNotFound is the error hashicorp/raft recognises (by its text) for a
// stable key never set.
var errNotFound = errors.New("not found")

func openLogStore(dir string, log *slog.Logger) (*logStore, error) {
	db, err := pebble.Open(dir, &pebble.Options{Logger: pebbleLogger{log}})
	if err != nil {
		return nil, fmt.Errorf("cluster: open the raft log in %s: %w", dir, err)
	}
	s := &logStore{db: db}
	if err := s.loadBounds(); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

func logKey(i uint64) []byte {
	k := make([]byte, logKeyLen)
	k[0] = logPrefix
	binary.BigEndian.PutUint64(k[1:], i)
	return k
}

func (s *logStore) loadBounds() error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{logPrefix}, UpperBound: []byte{logPrefix + 1}})
	if err != nil {
		return err
	}
	defer it.Close()
	if it.First() {
		s.first = binary.BigEndian.Uint64(it.Key()[1:])
	}
	if it.Last() {
		s.last = binary.BigEndian.Uint64(it.Key()[1:])
	}
	return it.Error()
}

func (s *logStore) FirstIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.first, nil
}

func (s *logStore) LastIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, nil
}

func (s *logStore) GetLog(index uint64, l *raft.Log) error {
	v, closer, err := s.db.Get(logKey(index))
	if errors.Is(err, pebble.ErrNotFound) {
		return raft.ErrLogNotFound
	}
	if err != nil {
		return err
	}
	defer closer.Close()
	l.Index = index
	return decodeEntry(v, l)
}

func (s *logStore) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

func (s *logStore) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	b := s.db.NewBatch()
	defer b.Close()
	var buf []byte
	for _, l := range logs {
		buf = appendEntry(buf[:0], l)
		if err := b.Set(logKey(l.Index), buf, nil); err != nil {
			return err
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("cluster: append to the raft log: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.first == 0 || logs[0].Index < s.first {
		s.first = logs[0].Index
	}
	s.last = max(s.last, logs[len(logs)-1].Index)
	return nil
}

// DeleteRange removes entries min..max inclusive (a prefix after a
// snapshot, or a suffix a new leader overwrites).
func (s *logStore) DeleteRange(lo, hi uint64) error {
	if err := s.db.DeleteRange(logKey(lo), logKey(hi+1), pebble.Sync); err != nil {
		return fmt.Errorf("cluster: truncate the raft log: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case lo <= s.first && hi >= s.last:
		s.first, s.last = 0, 0
	case lo <= s.first:
		s.first = hi + 1
	case hi >= s.last:
		s.last = lo - 1
	}
	return nil
}

func stableKey(k []byte) []byte { return append([]byte{stablePrefix}, k...) }

func (s *logStore) Set(k, v []byte) error {
	return s.db.Set(stableKey(k), v, pebble.Sync)
}

func (s *logStore) Get(k []byte) ([]byte, error) {
	v, closer, err := s.db.Get(stableKey(k))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, errNotFound
	}
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	return append([]byte(nil), v...), nil
}

func (s *logStore) SetUint64(k []byte, v uint64) error {
	return s.Set(k, binary.BigEndian.AppendUint64(nil, v))
}

func (s *logStore) GetUint64(k []byte) (uint64, error) {
	v, err := s.Get(k)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("cluster: stable key %q: malformed value", k)
	}
	return binary.BigEndian.Uint64(v), nil
}

func (s *logStore) Close() error { return s.db.Close() }

// appendEntry encodes a log entry:
// version(1) term(uvarint) type(1) appendedAt(varint ns, 0 = zero) data ext.
func appendEntry(dst []byte, l *raft.Log) []byte {
	dst = append(dst, entryVersion)
	dst = binary.AppendUvarint(dst, l.Term)
	dst = append(dst, byte(l.Type))
	var at int64
	if !l.AppendedAt.IsZero() {
		at = l.AppendedAt.UnixNano()
	}
	dst = binary.AppendVarint(dst, at)
	dst = binary.AppendUvarint(dst, uint64(len(l.Data)))
	dst = append(dst, l.Data...)
	dst = binary.AppendUvarint(dst, uint64(len(l.Extensions)))
	return append(dst, l.Extensions...)
}

func decodeEntry(v []byte, l *raft.Log) error {
	bad := func() error { return fmt.Errorf("cluster: corrupt raft log entry %d", l.Index) }
	if len(v) < 1 || v[0] != entryVersion {
		return bad()
	}
	v = v[1:]
	term, n := binary.Uvarint(v)
	if n <= 0 || len(v) < n+1 {
		return bad()
	}
	typ := v[n]
	v = v[n+1:]
	at, n := binary.Varint(v)
	if n <= 0 {
		return bad()
	}
	v = v[n:]
	chunk := func() ([]byte, bool) {
		ln, n := binary.Uvarint(v)
		if n <= 0 || ln > uint64(len(v)-n) {
			return nil, false
		}
		out := append([]byte(nil), v[n:n+int(ln)]...)
		v = v[n+int(ln):]
		return out, true
	}
	data, ok := chunk()
	if !ok {
		return bad()
	}
	ext, ok := chunk()
	if !ok || len(v) != 0 {
		return bad()
	}
	idx := l.Index
	*l = raft.Log{Index: idx, Term: term, Type: raft.LogType(typ), Data: data, Extensions: ext}
	if at != 0 {
		l.AppendedAt = time.Unix(0, at)
	}
	return nil
}

// pebbleLogger adapts slog to Pebble's logger; Fatalf panics (Pebble
// cannot go on), which stops the member.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) { p.l.Debug(fmt.Sprintf(format, args...)) }
func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "raft-log")
}
func (p pebbleLogger) Fatalf(format string, args ...any) {
	panic("cluster: raft log: " + fmt.Sprintf(format, args...))
}
