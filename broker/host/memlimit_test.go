package host

import (
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

// TestMemoryLimitFollowsConfig: limits.memoryLimit is the process's soft
// memory limit from the Runner's start, follows every applied reload, and
// 0 gives the runtime's own setting back.
func TestMemoryLimitFollowsConfig(t *testing.T) {
	initial := initialMemoryLimit()
	t.Cleanup(func() { applyMemoryLimit(0) })
	current := func() int64 { return debug.SetMemoryLimit(-1) }

	cfg := loopbackConfig()
	cfg.Limits.MemoryLimit = 64 << 20
	f := startRunner(t, cfg, newFakeEngine())
	<-f.r.ReadyC()
	if got := current(); got != 64<<20 {
		t.Fatalf("after start: memory limit %d, want %d", got, 64<<20)
	}

	rf := newReloadFixture(t, "configGeneration: 1\n", nil)
	rf.write(t, "configGeneration: 2\nlimits:\n  memoryLimit: 100663296\n")
	if err := rf.r.Check(); err != nil {
		t.Fatal(err)
	}
	if got := current(); got != 96<<20 {
		t.Fatalf("after a reload: memory limit %d, want %d", got, 96<<20)
	}
	rf.write(t, "configGeneration: 3\n")
	if err := rf.r.Check(); err != nil {
		t.Fatal(err)
	}
	if got := current(); got != initial {
		t.Fatalf("after memoryLimit 0: memory limit %d, want the runtime's %d", got, initial)
	}
}

// TestRecoveryGCPercent: recoveries raise the GC percent while any runs,
// in any order of their ends, and put back what was set before; a process
// with GC off or a higher percent keeps it.
func TestRecoveryGCPercent(t *testing.T) {
	orig := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(orig) })
	current := func() int { p := debug.SetGCPercent(-1); debug.SetGCPercent(p); return p }

	a := raiseGCForRecovery()
	b := raiseGCForRecovery()
	if got := current(); got != recoveryGCPercent {
		t.Fatalf("during recovery: GC percent %d, want %d", got, recoveryGCPercent)
	}
	a()
	a() // a second call is a no-op
	if got := current(); got != recoveryGCPercent {
		t.Fatalf("one recovery still running: GC percent %d, want %d", got, recoveryGCPercent)
	}
	b()
	if got := current(); got != 100 {
		t.Fatalf("after recovery: GC percent %d, want 100", got)
	}
	for _, p := range []int{-1, 2 * recoveryGCPercent} {
		debug.SetGCPercent(p)
		restore := raiseGCForRecovery()
		if got := current(); got != p {
			t.Errorf("GC percent %d during recovery, want the process's %d", got, p)
		}
		restore()
		if got := current(); got != p {
			t.Errorf("GC percent %d after recovery, want %d", got, p)
		}
	}
}

// TestPrepareRecovery: before the store is opened, the configured memory
// limit is in force and the GC percent raised until the returned func.
func TestPrepareRecovery(t *testing.T) {
	orig := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(orig); applyMemoryLimit(0) })
	current := func() int { p := debug.SetGCPercent(-1); debug.SetGCPercent(p); return p }
	restore := PrepareRecovery(48 << 20)
	if got := debug.SetMemoryLimit(-1); got != 48<<20 {
		t.Errorf("memory limit %d while the store opens, want %d", got, 48<<20)
	}
	if got := current(); got != recoveryGCPercent {
		t.Errorf("GC percent %d while the store opens, want %d", got, recoveryGCPercent)
	}
	restore()
	if got := current(); got != 100 {
		t.Errorf("GC percent %d once the store is open, want 100", got)
	}
}

// TestBigRecoveryRestoresGCPercent: the GC percent raised for a recovery
// is put back at once after a short one, and also after a recovery of
// bigRecovery or more, where the background collection that returns its
// garbage runs first (that order, which spares the first clients the
// collection's mark assists, shows in gctrace, not here).
func TestBigRecoveryRestoresGCPercent(t *testing.T) {
	orig := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(orig) })
	// Read without setting: a probe that set the percent would race the
	// runner's raise.
	current := func() int {
		s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
		metrics.Read(s)
		return int(s[0].Value.Uint64())
	}

	f := startRunner(t, loopbackConfig(), newFakeEngine())
	<-f.r.ReadyC()
	if got := current(); got != 100 {
		t.Fatalf("after a short recovery: GC percent %d, want 100", got)
	}

	eng := newFakeEngine()
	eng.startBlock = make(chan struct{})
	release := time.AfterFunc(bigRecovery, func() { close(eng.startBlock) })
	defer release.Stop()
	f = startRunner(t, loopbackConfig(), eng)
	eventually(t, 5*time.Second, "the GC percent raised during recovery", func() bool { return current() == recoveryGCPercent })
	<-f.r.ReadyC()
	eventually(t, 10*time.Second, "the GC percent put back after the collection", func() bool { return current() == 100 })
}
