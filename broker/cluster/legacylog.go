package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/raft"
)

// The Raft log of earlier builds: a Pebble database in raft/log, entries
// keyed by big-endian index ('l' + index), stable keys by name ('s' +
// name). It is only read now, once, to convert it to the WAL.
const (
	legacyLogDir = "log"
	logPrefix    = 'l' // l<index:8> -> entry
	stablePrefix = 's' // s<key>     -> value
	logKeyLen    = 9
	entryVersion = 1

	// migrateChunk bounds the entries held in memory while converting.
	migrateChunk = 8 << 20
)

// migrateLegacyLog converts raft/log (Pebble) into raft/wal, every entry
// and stable key, in three steps a crash can interrupt anywhere:
//  1. the WAL is written in raft/wal.migrating (removed and redone if a
//     crash left it),
//  2. it is renamed to raft/wal (the directory fsynced): from here the WAL
//     is the log,
//  3. raft/log is removed (a leftover next to raft/wal is removed at the
//     next open).
//
// Memory is bounded by migrateChunk, however long the log.
func migrateLegacyLog(raftDir string, log *slog.Logger) error {
	legacy := filepath.Join(raftDir, legacyLogDir)
	dst := filepath.Join(raftDir, "wal")
	if !isDir(legacy) {
		return nil // none, or the guard file (writeLegacyGuard)
	}
	if exists(dst) {
		// Step 3 did not finish before a crash.
		if err := os.RemoveAll(legacy); err != nil {
			return fmt.Errorf("cluster: remove the converted raft log: %w", err)
		}
		return syncDir(raftDir)
	}
	tmp := dst + ".migrating"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("cluster: convert the raft log: %w", err)
	}
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return fmt.Errorf("cluster: convert the raft log: %w", err)
	}
	n, first, last, err := copyLegacyLog(legacy, tmp, log)
	if err != nil {
		return fmt.Errorf("cluster: convert the raft log in %s: %w", legacy, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("cluster: convert the raft log: %w", err)
	}
	if err := syncDir(raftDir); err != nil {
		return err
	}
	if err := os.RemoveAll(legacy); err != nil {
		return fmt.Errorf("cluster: remove the converted raft log: %w", err)
	}
	log.Info("converted the raft log to the write-ahead log format", "entries", n, "first", first, "last", last)
	return syncDir(raftDir)
}

// legacyUint64Keys are the stable keys written with SetUint64: Raft's
// terms (its votes' candidate is a string).
var legacyUint64Keys = map[string]bool{"CurrentTerm": true, "LastVoteTerm": true}

// copyLegacyLog copies the Pebble log in src into a new WAL in dst.
func copyLegacyLog(src, dst string, log *slog.Logger) (n int, first, last uint64, err error) {
	db, err := pebble.Open(src, &pebble.Options{Logger: pebbleLogger{log}, ReadOnly: true})
	if err != nil {
		return 0, 0, 0, err
	}
	defer db.Close()
	w, err := openWAL(dst, log)
	if err != nil {
		return 0, 0, 0, err
	}
	defer func() {
		if cerr := w.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()

	if err := copyLegacyStable(db, w); err != nil {
		return 0, 0, 0, err
	}
	return copyLegacyEntries(db, w)
}

// copyLegacyStable copies the stable keys (terms, vote).
func copyLegacyStable(db *pebble.DB, w *logStore) error {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{stablePrefix}, UpperBound: []byte{stablePrefix + 1}})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		k, v := string(it.Key()[1:]), it.Value()
		var err error
		if legacyUint64Keys[k] {
			// The Pebble log stored these big-endian, the WAL little-endian:
			// each is read back through its own SetUint64/GetUint64.
			if len(v) != 8 {
				err = fmt.Errorf("stable key %q: malformed value", k)
			} else {
				err = w.SetUint64([]byte(k), binary.BigEndian.Uint64(v))
			}
		} else {
			err = w.Set([]byte(k), append([]byte(nil), v...))
		}
		if err != nil {
			_ = it.Close()
			return err
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return err
	}

	return nil
}

// copyLegacyEntries copies the entries, in chunks of migrateChunk bytes.
func copyLegacyEntries(db *pebble.DB, w *logStore) (n int, first, last uint64, err error) {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{logPrefix}, UpperBound: []byte{logPrefix + 1}})
	if err != nil {
		return 0, 0, 0, err
	}
	defer func() { err = errors.Join(err, it.Close()) }()
	var chunk []*raft.Log
	size := 0
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		err := w.StoreLogs(chunk)
		chunk, size = chunk[:0], 0
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) != logKeyLen {
			return 0, 0, 0, fmt.Errorf("corrupt raft log key %x", k)
		}
		l := &raft.Log{Index: binary.BigEndian.Uint64(k[1:])}
		if err := decodeEntry(it.Value(), l); err != nil {
			return 0, 0, 0, err
		}
		if last != 0 && l.Index != last+1 {
			return 0, 0, 0, fmt.Errorf("raft log has a gap: entry %d follows %d", l.Index, last)
		}
		if first == 0 {
			first = l.Index
		}
		last = l.Index
		n++
		chunk = append(chunk, l)
		if size += len(l.Data) + len(l.Extensions); size >= migrateChunk {
			if err := flush(); err != nil {
				return 0, 0, 0, err
			}
		}
	}
	if err := it.Error(); err != nil {
		return 0, 0, 0, err
	}
	return n, first, last, flush()
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
