package server

import (
	"container/list"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bollard-io/bollard/broker/config"
)

// loginGuard bounds the CPU that CONNECT packets can cost (config.Login):
// a cap on concurrent password checks with a bounded wait for a slot, and
// a back-off per source address after failed logins. Refusals are counted
// (bollard_login_refused_total).
type loginGuard struct {
	checks   checkSlots
	backoff  backoffTable
	busy     atomic.Uint64 // refused: no check slot within CheckWait
	backedUp atomic.Uint64 // refused: the source address is backing off
	failures atomic.Uint64 // failed password checks
}

// checkSlots is a counting semaphore whose size can change with a config
// reload (so not a buffered channel).
type checkSlots struct {
	mu    sync.Mutex
	inUse int
	freed chan struct{} // closed and replaced on each release
}

// checkLimit is login.maxConcurrentChecks, 0 meaning one per CPU.
func checkLimit(l config.Login) int {
	if l.MaxConcurrentChecks > 0 {
		return l.MaxConcurrentChecks
	}
	return runtime.GOMAXPROCS(0)
}

// acquire takes a check slot, waiting up to wait; false: none was free.
func (s *checkSlots) acquire(limit int, wait time.Duration) bool {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		s.mu.Lock()
		if s.inUse < limit {
			s.inUse++
			s.mu.Unlock()
			return true
		}
		if s.freed == nil {
			s.freed = make(chan struct{})
		}
		freed := s.freed
		s.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(wait)
		}
		select {
		case <-freed:
		case <-timer.C:
			return false
		}
	}
}

func (s *checkSlots) release() {
	s.mu.Lock()
	s.inUse--
	if s.freed != nil {
		close(s.freed)
		s.freed = nil
	}
	s.mu.Unlock()
}

// inFlight is the number of checks running.
func (s *checkSlots) inFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inUse
}

// backoffTable remembers the source addresses whose logins failed, at
// most a configured number of them: the least recently failed is
// forgotten first (an LRU list), so its memory is bounded whatever number
// of addresses an attacker rotates through.
type backoffTable struct {
	mu    sync.Mutex
	byKey map[string]*list.Element
	lru   list.List // of *backoffEntry, most recently failed first
}

type backoffEntry struct {
	key      string
	failures int
	until    time.Time // CONNECTs are refused before it
}

// sourceKey is the back-off key of a remote address: the IP for IPv4, the
// /64 prefix for IPv6 (one host usually holds a whole /64).
func sourceKey(a net.Addr) string {
	if a == nil {
		return ""
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		host = a.String()
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return host
	}
	if ip4 := ip.To4(); ip4 != nil {
		return ip4.String()
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// blocked reports whether key is backing off at now. An entry whose
// back-off ended more than max ago is forgotten: failures long ago do not
// count against a new attempt.
func (t *backoffTable) blocked(key string, now time.Time, max time.Duration) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	el := t.byKey[key]
	if el == nil {
		return false
	}
	e := el.Value.(*backoffEntry)
	if now.Sub(e.until) > max {
		t.remove(el)
		return false
	}
	return now.Before(e.until)
}

// failed records a failed login from key. After more than free failures
// its back-off is base, doubled by each further failure, capped at max.
// size bounds the table.
func (t *backoffTable) failed(key string, now time.Time, free int, base, max time.Duration, size int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byKey == nil {
		t.byKey = make(map[string]*list.Element)
	}
	el := t.byKey[key]
	var e *backoffEntry
	if el != nil {
		e = el.Value.(*backoffEntry)
		if now.Sub(e.until) > max {
			e.failures = 0
		}
		t.lru.MoveToFront(el)
	} else {
		for t.lru.Len() >= size {
			t.remove(t.lru.Back())
		}
		e = &backoffEntry{key: key}
		t.byKey[key] = t.lru.PushFront(e)
	}
	e.failures++
	if e.failures <= free {
		e.until = now // counted, not refused
		return
	}
	d := base
	for i := free + 1; i < e.failures && d < max; i++ {
		d *= 2
	}
	e.until = now.Add(min(d, max))
}

// succeeded forgets key after a successful login.
func (t *backoffTable) succeeded(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if el := t.byKey[key]; el != nil {
		t.remove(el)
	}
}

func (t *backoffTable) remove(el *list.Element) {
	delete(t.byKey, el.Value.(*backoffEntry).key)
	t.lru.Remove(el)
}

// len is the number of addresses remembered.
func (t *backoffTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lru.Len()
}
