// Package lograte bounds repeated log lines: the first line of a kind is
// logged at once, then at most one per interval, carrying the number of
// lines of that kind left out since the last one logged. A line's kind is
// a key its caller chooses (a message and what it is about).
package lograte

import (
	"sync"
	"time"
)

// DefaultKinds is how many kinds a Limiter with Kinds 0 remembers.
const DefaultKinds = 256

// Limiter decides which lines are logged. The zero value is not usable:
// set Every. It is safe for concurrent use.
type Limiter struct {
	// Every is the least time between two logged lines of one kind.
	Every time.Duration
	// Kinds bounds the kinds remembered (DefaultKinds when 0): past it,
	// those whose next line would be logged anyway are forgotten, and all
	// of them if none is, so that the memory stays bounded whatever the
	// keys are.
	Kinds int

	mu    sync.Mutex
	kinds map[string]*kind
}

type kind struct {
	last    time.Time
	skipped uint64
}

// Allow reports whether a line of key is logged at now and, if it is, how
// many lines of key were not since the last one that was.
func (l *Limiter) Allow(key string, now time.Time) (bool, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := l.kinds[key]
	if k == nil {
		if l.kinds == nil {
			l.kinds = make(map[string]*kind)
		}
		if len(l.kinds) >= l.max() {
			l.forgetLocked(now)
		}
		l.kinds[key] = &kind{last: now}
		return true, 0
	}
	if now.Sub(k.last) < l.Every {
		k.skipped++
		return false, 0
	}
	n := k.skipped
	k.last, k.skipped = now, 0
	return true, n
}

// Len is the number of kinds remembered.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.kinds)
}

func (l *Limiter) max() int {
	if l.Kinds > 0 {
		return l.Kinds
	}
	return DefaultKinds
}

func (l *Limiter) forgetLocked(now time.Time) {
	for key, k := range l.kinds {
		if now.Sub(k.last) >= l.Every {
			delete(l.kinds, key)
		}
	}
	if len(l.kinds) >= l.max() {
		clear(l.kinds)
	}
}
