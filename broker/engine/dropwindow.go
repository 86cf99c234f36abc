package engine

import "time"

// DropWindow is how far back Stats.RecentDrops (and /v1/status
// recentDrops) count: drops by reason over the last five minutes, in
// dropSlot steps, so that a status shows what is being dropped now rather
// than since the process started.
const (
	DropWindow = 5 * time.Minute
	dropSlot   = 10 * time.Second
	dropSlots  = int(DropWindow / dropSlot)
)

// dropStat is what the counters keep of one drop reason; guarded by
// counters.dropMu. A drop looks up its reason once: a full fleet drops
// one message per offline session per publish (DropOldest), millions a
// minute, and three maps and a map per slot cost a twelfth of the broker's
// CPU there.
type dropStat struct {
	total    uint64
	recent   [dropSlots]uint64 // by dropWindow slot
	lastLog  time.Time         // the last log line
	unlogged uint64            // drops since
}

// dropWindow rotates the dropSlots slots of every dropStat.recent; guarded
// by counters.dropMu.
type dropWindow struct {
	epochs [dropSlots]int64 // each slot's start, in dropSlot units since the Unix epoch
}

// slot returns the slot of now; one that starts a new epoch is cleared in
// every reason's counts first.
func (w *dropWindow) slot(now time.Time, stats map[string]*dropStat) int {
	e := now.UnixNano() / int64(dropSlot)
	i := int(e % int64(dropSlots))
	if w.epochs[i] != e {
		w.epochs[i] = e
		for _, st := range stats {
			st.recent[i] = 0
		}
	}
	return i
}

// sum totals each reason's drops in the slots within DropWindow of now
// (the current slot included, so the window spans DropWindow to
// DropWindow+dropSlot); reasons without any are left out.
func (w *dropWindow) sum(now time.Time, stats map[string]*dropStat) map[string]uint64 {
	e := now.UnixNano() / int64(dropSlot)
	out := make(map[string]uint64)
	for r, st := range stats {
		var n uint64
		for i, ep := range w.epochs {
			if ep > e-int64(dropSlots) && ep <= e {
				n += st.recent[i]
			}
		}
		if n > 0 {
			out[r] = n
		}
	}
	return out
}
