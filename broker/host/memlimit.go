package host

import (
	"runtime/debug"
	"sync"
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
