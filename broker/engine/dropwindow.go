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

// dropWindow counts drops by reason in dropSlots rotating slots; guarded
// by counters.dropMu. It holds at most dropSlots maps of the reasons seen,
// a few dozen entries.
type dropWindow struct {
	slots [dropSlots]dropSlotCounts
}

type dropSlotCounts struct {
	epoch int64 // the slot's start, in dropSlot units since the Unix epoch
	n     map[string]uint64
}

// add counts n drops for reason at now.
func (w *dropWindow) add(now time.Time, reason string, n uint64) {
	e := now.UnixNano() / int64(dropSlot)
	s := &w.slots[e%int64(dropSlots)]
	if s.epoch != e || s.n == nil {
		s.epoch = e
		if s.n == nil {
			s.n = make(map[string]uint64)
		}
		clear(s.n)
	}
	s.n[reason] += n
}

// sum totals the drops of the slots within DropWindow of now (the current
// slot included, so the window spans DropWindow to DropWindow+dropSlot).
func (w *dropWindow) sum(now time.Time) map[string]uint64 {
	e := now.UnixNano() / int64(dropSlot)
	out := make(map[string]uint64)
	for i := range w.slots {
		s := &w.slots[i]
		if s.epoch > e-int64(dropSlots) && s.epoch <= e {
			for r, n := range s.n {
				out[r] += n
			}
		}
	}
	return out
}
