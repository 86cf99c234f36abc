package host

import (
	"runtime/debug"
	"sync"
	"time"
)

// initialMemoryLimit is the runtime's memory limit before any config set
// one (GOMEMLIMIT, or none).
var initialMemoryLimit = sync.OnceValue(func() int64 { return debug.SetMemoryLimit(-1) })

// applyMemoryLimit sets the process's soft memory limit from
// limits.memoryLimit; 0 restores the runtime's own setting. The limit is
// process-wide: with several servers in one process the last one applied
// wins.
func applyMemoryLimit(n int64) {
	initial := initialMemoryLimit()
	if n <= 0 {
		n = initial
	}
	debug.SetMemoryLimit(n)
}

// bigRecovery: a recovery that took this long built a large heap (a
// million sessions take seconds) and left the garbage of decoding them,
// which recoveryGCPercent let grow; once ready, the host collects it and
// returns it to the OS at once (debug.FreeOSMemory, in the background)
// rather than over the scavenger's minutes, so the resident set right
// after start is the live state.
const bigRecovery = time.Second

// recoveryGCPercent is the GC percent while the store is opened and the
// engine recovers: recovery only grows the heap (a million offline
// sessions hold about 800 MB) and makes little garbage (the store's
// LoadSessions reuses its decoding state), so a collection during it
// marks a large growing live heap for nothing. At the default of 100 the
// collector runs at every doubling; at 400, a million sessions still paid
// one full mark of ~500 MB, which on a loaded 2-core machine was seconds
// of start time. At 800 the heap may reach 9x the live heap of the last
// collection before the next (for a million sessions: none after the
// store is open), and the soft memory limit (limits.memoryLimit) still
// bounds it.
const recoveryGCPercent = 800

// gcRaise counts the recoveries running in the process (tests start many
// servers in one process): the first raises the GC percent, the last puts
// back what was there.
var gcRaise struct {
	sync.Mutex
	n    int
	prev int
}

// PrepareRecovery applies limits.memoryLimit and raises the GC percent
// (recoveryGCPercent) for the recovery that opening the store begins: the
// durable store reads every session key when it opens. Call the returned
// func once the store is open; the Runner raises the percent again while
// the engine recovers.
func PrepareRecovery(memoryLimit int64) (restore func()) {
	applyMemoryLimit(memoryLimit)
	return raiseGCForRecovery()
}

// raiseGCForRecovery sets recoveryGCPercent, unless the process runs with
// a higher percent or GC off, and returns the func that undoes it.
func raiseGCForRecovery() (restore func()) {
	gcRaise.Lock()
	if gcRaise.n == 0 {
		gcRaise.prev = debug.SetGCPercent(recoveryGCPercent)
		if gcRaise.prev < 0 || gcRaise.prev > recoveryGCPercent {
			debug.SetGCPercent(gcRaise.prev)
		}
	}
	gcRaise.n++
	gcRaise.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			gcRaise.Lock()
			defer gcRaise.Unlock()
			if gcRaise.n--; gcRaise.n == 0 {
				debug.SetGCPercent(gcRaise.prev)
			}
		})
	}
}
