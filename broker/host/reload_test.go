package host

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/config"
)

// reloadFixture is a config file, the config it started with, and a
// reloader over a fake engine.
type reloadFixture struct {
	path  string
	eng   *fakeEngine
	level *slog.LevelVar
	r     *Reloader
}

func newReloadFixture(t *testing.T, initial string, overrides func(*config.Config)) *reloadFixture {
	t.Helper()
	f := &reloadFixture{path: filepath.Join(t.TempDir(), "bollard.yaml"), eng: newFakeEngine(), level: new(slog.LevelVar)}
	f.write(t, initial)
	cfg, err := config.Load(f.path)
	if err != nil {
		t.Fatal(err)
	}
	if overrides != nil {
		overrides(cfg)
	}
	f.level.Set(ParseLogLevel(cfg.LogLevel))
	f.r = NewReloader(f.path, cfg, f.eng, ReloaderOptions{
		Interval: 10 * time.Millisecond, Overrides: overrides, LevelVar: f.level, Logger: testLogger(t),
	})
	return f
}

func (f *reloadFixture) write(t *testing.T, content string) {
	t.Helper()
	tmp := f.path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, f.path); err != nil {
		t.Fatal(err)
	}
}

func TestReloadAppliesHotChanges(t *testing.T) {
	f := newReloadFixture(t, "configGeneration: 1\n", nil)
	if err := f.r.Check(); err != nil {
		t.Fatal(err)
	}
	if n := len(f.eng.appliedConfigs()); n != 0 {
		t.Fatalf("the unchanged startup file was applied %d times", n)
	}
	f.write(t, "configGeneration: 2\nlogLevel: debug\nqueues:\n  maxQueuedMessages: 5\n")
	if err := f.r.Check(); err != nil {
		t.Fatal(err)
	}
	applied := f.eng.appliedConfigs()
	if len(applied) != 1 || applied[0].Queues.MaxQueuedMessages != 5 {
		t.Fatalf("applied = %v", applied)
	}
	st := f.r.Status()
	if st.AppliedGeneration != 2 || st.LastError != "" || len(st.PendingRestartFields) != 0 || st.Reloads != 1 {
		t.Errorf("status = %+v", st)
	}
	if f.level.Level() != slog.LevelDebug {
		t.Errorf("log level = %v, want debug", f.level.Level())
	}
	if err := f.r.Check(); err != nil || len(f.eng.appliedConfigs()) != 1 {
		t.Errorf("unchanged file re-applied: %v", err)
	}
}

func TestReloadKeepsOldConfigOnError(t *testing.T) {
	f := newReloadFixture(t, "configGeneration: 1\n", nil)
	f.write(t, "configGeneration: 2\nqueues:\n  overflowPolicy: DropAll\n")
	err := f.r.Check()
	if err == nil || !strings.Contains(err.Error(), "queues.overflowPolicy") {
		t.Fatalf("Check = %v, want an error naming the field", err)
	}
	st := f.r.Status()
	if !strings.Contains(st.LastError, "queues.overflowPolicy") || st.AppliedGeneration != 1 || st.Failures != 1 {
		t.Errorf("status = %+v", st)
	}
	if len(f.eng.appliedConfigs()) != 0 || f.r.Current().Queues.OverflowPolicy != config.OverflowDropOldest {
		t.Error("a bad file was applied")
	}
	if err := f.r.Check(); err != nil { // the same bad content: not parsed again
		t.Errorf("second Check = %v", err)
	}
	if st := f.r.Status(); st.LastError == "" || st.Failures != 1 {
		t.Errorf("the same bad file must stay reported but be counted once: %+v", st)
	}
	f.write(t, "configGeneration: 3\n")
	if err := f.r.Check(); err != nil {
		t.Fatal(err)
	}
	if st := f.r.Status(); st.LastError != "" || st.AppliedGeneration != 3 {
		t.Errorf("after a fix: %+v", st)
	}
}

func TestReloadMissingFile(t *testing.T) {
	f := newReloadFixture(t, "configGeneration: 1\n", nil)
	if err := os.Remove(f.path); err != nil {
		t.Fatal(err)
	}
	if err := f.r.Check(); err == nil || !strings.Contains(f.r.Status().LastError, "no such file") {
		t.Errorf("missing file: %v %+v", err, f.r.Status())
	}
	f.write(t, "configGeneration: 1\n")
	if err := f.r.Check(); err != nil || f.r.Status().LastError != "" {
		t.Errorf("file back: %v %+v", err, f.r.Status())
	}
}

func TestReloadReportsPendingRestart(t *testing.T) {
	f := newReloadFixture(t, "configGeneration: 1\n", nil)
	f.write(t, "configGeneration: 2\ndataDir: /elsewhere\n")
	if err := f.r.Check(); err != nil {
		t.Fatal(err)
	}
	if st := f.r.Status(); !slices.Equal(st.PendingRestartFields, []string{"dataDir"}) || st.AppliedGeneration != 2 {
		t.Errorf("status = %+v", st)
	}
	// A later hot-only change keeps the restart pending: the process still
	// runs with the old data directory.
	f.write(t, "configGeneration: 3\ndataDir: /elsewhere\nlogLevel: warn\n")
	if err := f.r.Check(); err != nil {
		t.Fatal(err)
	}
	if st := f.r.Status(); !slices.Equal(st.PendingRestartFields, []string{"dataDir"}) || st.AppliedGeneration != 3 {
		t.Errorf("status = %+v", st)
	}
	// Reverting the restart field clears it.
	f.write(t, "configGeneration: 4\nlogLevel: warn\n")
	if err := f.r.Check(); err != nil {
		t.Fatal(err)
	}
	if st := f.r.Status(); len(st.PendingRestartFields) != 0 {
		t.Errorf("status = %+v", st)
	}
}

// limits.memoryLimit applies to the runtime at once, but the store's
// memtables follow it only at the next start: a change that moves them is
// reported pending until then, one that does not move them is not.
func TestReloadMemoryLimitPendsForTheMemtables(t *testing.T) {
	f := newReloadFixture(t, "configGeneration: 1\n", nil)
	t.Cleanup(func() { applyMemoryLimit(0) })
	for _, tc := range []struct {
		limit   string
		pending []string
	}{
		{"100000000", nil}, // still 4 MiB memtables
		{"1073741824", []string{"limits.memoryLimit"}},
		{"0", nil},
	} {
		f.write(t, "configGeneration: 2\nlimits: {memoryLimit: "+tc.limit+"}\n")
		if err := f.r.Check(); err != nil {
			t.Fatal(err)
		}
		if st := f.r.Status(); !slices.Equal(st.PendingRestartFields, tc.pending) {
			t.Errorf("memoryLimit %s: pending %v, want %v", tc.limit, st.PendingRestartFields, tc.pending)
		}
	}
}

func TestReloadKeepsFlagOverrides(t *testing.T) {
	overrides := func(c *config.Config) { c.LogLevel = "error"; c.DataDir = "/from/flag" }
	f := newReloadFixture(t, "configGeneration: 1\n", overrides)
	f.write(t, "configGeneration: 2\nlogLevel: debug\ndataDir: /from/file\n")
	if err := f.r.Check(); err != nil {
		t.Fatal(err)
	}
	cur := f.r.Current()
	if cur.LogLevel != "error" || cur.DataDir != "/from/flag" || cur.ConfigGeneration != 2 {
		t.Errorf("current = logLevel %s dataDir %s gen %d", cur.LogLevel, cur.DataDir, cur.ConfigGeneration)
	}
	if st := f.r.Status(); len(st.PendingRestartFields) != 0 {
		t.Errorf("a field fixed by a flag is reported pending: %+v", st)
	}
	if f.level.Level() != slog.LevelError {
		t.Errorf("log level = %v", f.level.Level())
	}
}

// TestReloadConfigMapSymlinkSwap mimics a Kubernetes ConfigMap volume: the
// file is a symlink through ..data, which is swapped atomically to a new
// timestamped directory.
func TestReloadConfigMapSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	writeVersion := func(name, content string) {
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name, "bollard.yaml"), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(name, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	writeVersion("..v1", "configGeneration: 1\n")
	path := filepath.Join(dir, "bollard.yaml")
	if err := os.Symlink("..data/bollard.yaml", path); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	eng := newFakeEngine()
	r := NewReloader(path, cfg, eng, ReloaderOptions{Interval: 5 * time.Millisecond, Logger: testLogger(t)})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()

	writeVersion("..v2", "configGeneration: 2\nsessions:\n  maxSessionExpiry: 1h\n  defaultSessionExpiry: 1h\n")
	eventually(t, 5*time.Second, "generation 2 applied", func() bool { return eng.ConfigGeneration() == 2 })
	writeVersion("..v3", "configGeneration: 3\n")
	r.Trigger()
	eventually(t, 5*time.Second, "generation 3 applied", func() bool { return eng.ConfigGeneration() == 3 })
	cancel()
	<-done
}

// waitFor polls cond until it holds or the deadline passes.
func TestReloadUsersFileContent(t *testing.T) {
	users := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(users, []byte("alice:$2a$04$abcdefghijklmnopqrstuu5Xb6cQKfqGKcmj1xOMZ8s9BkStNKpi.\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := newReloadFixture(t, "auth:\n  usersFile: "+users+"\n", nil)
	if err := f.r.Check(); err != nil {
		t.Fatal(err)
	}
	if n := len(f.eng.appliedConfigs()); n != 0 {
		t.Fatalf("the startup users file was applied %d times", n)
	}
	// A Secret update rewrites the users file, not the config file.
	if err := os.WriteFile(users, []byte("bob:$2a$04$abcdefghijklmnopqrstuu5Xb6cQKfqGKcmj1xOMZ8s9BkStNKpi.\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.r.Check(); err != nil {
		t.Fatal(err)
	}
	if n := len(f.eng.appliedConfigs()); n != 1 {
		t.Fatalf("users file change applied %d times, want 1", n)
	}
	if err := f.r.Check(); err != nil || len(f.eng.appliedConfigs()) != 1 {
		t.Errorf("unchanged users file re-applied: %v", err)
	}
}

func TestParseLogLevel(t *testing.T) {
	for in, want := range map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError, "": slog.LevelInfo} {
		if got := ParseLogLevel(in); got != want {
			t.Errorf("ParseLogLevel(%q) = %v", in, got)
		}
	}
}

// TestReloadReportsRefusedGeneration: a file version the broker refuses
// (here an ACL rule broker/access rejects) is reported by its generation
// and error, never as applied, until a later version is applied.
func TestReloadReportsRefusedGeneration(t *testing.T) {
	f := newReloadFixture(t, "configGeneration: 1\n", nil)
	f.write(t, "configGeneration: 2\nauth:\n  acl:\n  - {user: \"$anonymous\", topic: \"#\", access: readwrite}\n")
	if err := f.r.Check(); err == nil || !strings.Contains(err.Error(), "auth.acl[0].user") {
		t.Fatalf("Check = %v, want an error naming auth.acl[0].user", err)
	}
	st := f.r.Status()
	if st.AppliedGeneration != 1 || st.RefusedGeneration != 2 || !strings.Contains(st.RefusedError, "auth.acl[0].user") {
		t.Fatalf("status = %+v", st)
	}
	if len(f.eng.appliedConfigs()) != 0 {
		t.Fatal("a refused file was applied")
	}
	f.write(t, "configGeneration: 3\n")
	if err := f.r.Check(); err != nil {
		t.Fatal(err)
	}
	if st := f.r.Status(); st.RefusedGeneration != 0 || st.RefusedError != "" || st.AppliedGeneration != 3 {
		t.Errorf("after a good file: %+v", st)
	}
}

// TestReloadReportsEngineRefusal: when the broker cannot apply a valid
// file (users or ACLs it cannot load), the generation is refused, not
// applied, and tried again only when the file changes.
func TestReloadReportsEngineRefusal(t *testing.T) {
	f := newReloadFixture(t, "configGeneration: 1\n", nil)
	f.eng.mu.Lock()
	f.eng.refuse = errors.New("host: auth: cannot load users")
	f.eng.mu.Unlock()
	f.write(t, "configGeneration: 2\nlogLevel: debug\n")
	if err := f.r.Check(); err == nil {
		t.Fatal("Check accepted a refused config")
	}
	st := f.r.Status()
	if st.AppliedGeneration != 1 || st.RefusedGeneration != 2 || st.Failures != 1 || f.level.Level() == slog.LevelDebug {
		t.Fatalf("status = %+v, log level %v", st, f.level.Level())
	}
	if err := f.r.Check(); err != nil || f.r.Status().Failures != 1 {
		t.Errorf("the same refused file was tried again: %v %+v", err, f.r.Status())
	}
	f.eng.mu.Lock()
	f.eng.refuse = nil
	f.eng.mu.Unlock()
	f.write(t, "configGeneration: 3\nlogLevel: debug\n")
	if err := f.r.Check(); err != nil {
		t.Fatal(err)
	}
	if st := f.r.Status(); st.AppliedGeneration != 3 || st.RefusedGeneration != 0 {
		t.Errorf("after a good file: %+v", st)
	}
}
