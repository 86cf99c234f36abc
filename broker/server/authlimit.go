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

// checkSlots is a counting semaphore for password checks whose size can
// change with a config reload. Waiters queue in two FIFO classes: a freed
// slot goes to the oldest waiter from a source address with no failed
// login on record before any suspect one, so a flood of wrong passwords
// queues behind itself and honest clients are checked first.
type checkSlots struct {
	mu      sync.Mutex
	inUse   int
	limit   int
	queues  [2]list.List // of chan struct{}: [0] clean sources, [1] suspect ones
	waiting int
}

// checkLimit is login.maxConcurrentChecks, 0 meaning one per CPU.
func checkLimit(l config.Login) int {
	if l.MaxConcurrentChecks > 0 {
		return l.MaxConcurrentChecks
	}
	return runtime.GOMAXPROCS(0)
}

// acquire takes a check slot, waiting up to wait; false: none was free.
// suspect puts the waiter in the second class.
func (s *checkSlots) acquire(limit int, wait time.Duration, suspect bool) bool {
	s.mu.Lock()
	s.limit = limit
	if s.inUse < limit && s.waiting == 0 {
		s.inUse++
		s.mu.Unlock()
		return true
	}
	q := &s.queues[0]
	if suspect {
		q = &s.queues[1]
	}
	ch := make(chan struct{}, 1)
	el := q.PushBack(ch)
	s.waiting++
	s.mu.Unlock()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-ch:
		return true
	case <-timer.C:
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-ch: // handed a slot while timing out: use it
		return true
	default:
	}
	q.Remove(el)
	s.waiting--
	return false
}

// release frees a slot, handing it to the first waiter of the first
// class while the limit allows.
func (s *checkSlots) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inUse--
	for s.inUse < s.limit && s.waiting > 0 {
		q := &s.queues[0]
		if q.Len() == 0 {
			q = &s.queues[1]
		}
		ch := q.Remove(q.Front()).(chan struct{})
		s.waiting--
		s.inUse++
		ch <- struct{}{}
	}
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

// blocked reports whether key is backing off at now, and whether it
// failed to log in recently at all (suspect). An entry whose back-off
// ended more than max ago is forgotten: failures long ago do not count
// against a new attempt.
func (t *backoffTable) blocked(key string, now time.Time, max time.Duration) (blocked, suspect bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	el := t.byKey[key]
	if el == nil {
		return false, false
	}
	e := el.Value.(*backoffEntry)
	if now.Sub(e.until) > max {
		t.remove(el)
		return false, false
	}
	return now.Before(e.until), true
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
