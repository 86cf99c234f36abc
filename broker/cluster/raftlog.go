package cluster

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/bollard-io/bollard/broker/lograte"
)

// raftLogEvery is how often a line of hashicorp/raft, its transport or
// raft-wal about the same member is logged at most: the first at once,
// then one per raftLogEvery with the number of lines left out since
// ("unlogged_before", as every limited line of the broker). A member that is down makes the leader log a failed
// heartbeat about every 300 ms and a failed contact twice a second, and a
// partitioned member an election after each timeout: about 12,000 lines an
// hour, which said nothing the first did not.
const raftLogEvery = 10 * time.Second

// peerArgs are the arguments by which hashicorp/raft names the member a
// line is about: lines that differ in them are limited apart.
var peerArgs = [...]string{"peer", "server-id", "target", "from", "candidate"}

// hclogFor returns the hclog.Logger given to hashicorp/raft and its parts:
// their lines become slog records of log (hclog's level, its message, its
// key-value pairs as attributes, "logger": "raft" or a sub-name such as
// "raft.wal"), at warning level and above, limited as raftLogEvery says.
func hclogFor(log *slog.Logger) hclog.Logger {
	return newRaftLogger(log, &lograte.Limiter{Every: raftLogEvery}, time.Now)
}

func newRaftLogger(log *slog.Logger, lim *lograte.Limiter, now func() time.Time) *raftLogger {
	level := new(atomic.Int32)
	level.Store(int32(hclog.Warn))
	return &raftLogger{log: log, name: "raft", level: level, lim: lim, now: now}
}

// raftLogger is an hclog.Logger writing to slog. Loggers derived by With
// and Named share the level and the limiter.
type raftLogger struct {
	log     *slog.Logger
	name    string
	implied []any
	level   *atomic.Int32 // an hclog.Level
	lim     *lograte.Limiter
	now     func() time.Time
}

var _ hclog.Logger = (*raftLogger)(nil)

func (l *raftLogger) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	if level < l.GetLevel() || level == hclog.Off {
		return
	}
	ok, skipped := l.lim.Allow(limitKey(level, l.name, msg, l.implied, args), l.now())
	if !ok {
		return
	}
	attrs := make([]slog.Attr, 0, 2+len(args)/2)
	attrs = append(attrs, slog.String("logger", l.name))
	attrs = appendArgs(attrs, args)
	attrs = append(attrs, slog.Uint64("unlogged_before", skipped))
	l.log.LogAttrs(context.Background(), slogLevel(level), msg, attrs...)
}

func (l *raftLogger) Trace(msg string, args ...any) { l.Log(hclog.Trace, msg, args...) }
func (l *raftLogger) Debug(msg string, args ...any) { l.Log(hclog.Debug, msg, args...) }
func (l *raftLogger) Info(msg string, args ...any)  { l.Log(hclog.Info, msg, args...) }
func (l *raftLogger) Warn(msg string, args ...any)  { l.Log(hclog.Warn, msg, args...) }
func (l *raftLogger) Error(msg string, args ...any) { l.Log(hclog.Error, msg, args...) }

func (l *raftLogger) IsTrace() bool { return l.GetLevel() <= hclog.Trace }
func (l *raftLogger) IsDebug() bool { return l.GetLevel() <= hclog.Debug }
func (l *raftLogger) IsInfo() bool  { return l.GetLevel() <= hclog.Info }
func (l *raftLogger) IsWarn() bool  { return l.GetLevel() <= hclog.Warn }
func (l *raftLogger) IsError() bool { return l.GetLevel() <= hclog.Error }

func (l *raftLogger) ImpliedArgs() []any { return l.implied }

func (l *raftLogger) With(args ...any) hclog.Logger {
	c := *l
	c.implied = append(append([]any(nil), l.implied...), args...)
	attrs := appendArgs(nil, args)
	as := make([]any, len(attrs))
	for i, a := range attrs {
		as[i] = a
	}
	c.log = l.log.With(as...)
	return &c
}

func (l *raftLogger) Name() string { return l.name }

func (l *raftLogger) Named(name string) hclog.Logger {
	if l.name != "" {
		name = l.name + "." + name
	}
	return l.ResetNamed(name)
}

func (l *raftLogger) ResetNamed(name string) hclog.Logger {
	c := *l
	c.name = name
	return &c
}

func (l *raftLogger) SetLevel(level hclog.Level) { l.level.Store(int32(level)) }
func (l *raftLogger) GetLevel() hclog.Level      { return hclog.Level(l.level.Load()) }

func (l *raftLogger) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(l.StandardWriter(opts), "", 0)
}

// StandardWriter takes the lines of a standard library logger: their level
// is opts.ForceLevel, or the "[ERROR]"-style prefix they start with, or
// info.
func (l *raftLogger) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	var force hclog.Level
	if opts != nil {
		force = opts.ForceLevel
	}
	return stdWriter{l: l, force: force}
}

type stdWriter struct {
	l     *raftLogger
	force hclog.Level
}

func (w stdWriter) Write(p []byte) (int, error) {
	for line := range bytes.SplitSeq(bytes.TrimRight(p, "\n"), []byte("\n")) {
		level, msg := w.force, strings.TrimSpace(string(line))
		if level == hclog.NoLevel {
			level, msg = stdLevel(msg)
		}
		w.l.Log(level, msg)
	}
	return len(p), nil
}

// stdLevel splits a standard logger's line into the level of its prefix
// ("[ERROR] ", "[WARN] ", ...; info without one) and the rest.
func stdLevel(s string) (hclog.Level, string) {
	for _, p := range []struct {
		prefix string
		level  hclog.Level
	}{{"[TRACE]", hclog.Trace}, {"[DEBUG]", hclog.Debug}, {"[INFO]", hclog.Info}, {"[WARN]", hclog.Warn}, {"[ERR]", hclog.Error}, {"[ERROR]", hclog.Error}} {
		if rest, ok := strings.CutPrefix(s, p.prefix); ok {
			return p.level, strings.TrimSpace(rest)
		}
	}
	return hclog.Info, s
}

func slogLevel(level hclog.Level) slog.Level {
	switch {
	case level <= hclog.Debug:
		return slog.LevelDebug
	case level == hclog.Info:
		return slog.LevelInfo
	case level == hclog.Warn:
		return slog.LevelWarn
	default:
		return slog.LevelError
	}
}

// appendArgs appends hclog's key-value pairs as attributes: keys with
// spaces get underscores ("backoff time" -> "backoff_time"), a key that
// a record already has gets "raft_" in front (hashicorp/raft's "time",
// the time since a member last answered, is not the record's time),
// durations and errors become strings, and a value without a key is
// "extra".
func appendArgs(attrs []slog.Attr, args []any) []slog.Attr {
	for i := 0; i < len(args); i += 2 {
		if i+1 == len(args) {
			attrs = append(attrs, slog.Any("extra", argValue(args[i])))
			break
		}
		key := strings.ReplaceAll(fmt.Sprint(args[i]), " ", "_")
		if slices.Contains(recordKeys[:], key) {
			key = "raft_" + key
		}
		attrs = append(attrs, slog.Any(key, argValue(args[i+1])))
	}
	return attrs
}

// recordKeys are the keys of a record that hashicorp/raft's arguments must
// not repeat: slog's own, this logger's, and those every cluster record
// has (Node's logger: "component", "member").
var recordKeys = [...]string{slog.TimeKey, slog.LevelKey, slog.MessageKey, slog.SourceKey,
	"logger", "unlogged_before", "extra", "component", "member"}

func argValue(v any) any {
	switch v := v.(type) {
	case string, bool, int, int32, int64, uint, uint32, uint64, float64, nil:
		return v
	case error:
		return v.Error()
	case hclog.Format:
		if len(v) > 0 {
			return fmt.Sprintf(fmt.Sprint(v[0]), v[1:]...)
		}
	}
	return fmt.Sprint(v) // durations, raft.Server, addresses, ...
}

// limitKey names the lines limited together: the same level, logger and
// message about the same member.
func limitKey(level hclog.Level, name, msg string, implied, args []any) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d\x00%s\x00%s", level, name, msg)
	for _, kv := range [][]any{implied, args} {
		for i := 0; i+1 < len(kv); i += 2 {
			for _, k := range peerArgs {
				if kv[i] == k {
					fmt.Fprintf(&b, "\x00%s=%v", k, kv[i+1])
				}
			}
		}
	}
	return b.String()
}
