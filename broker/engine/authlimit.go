package engine

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
	trusted  trustedTable
	busy     atomic.Uint64 // refused: no check slot within CheckWait
	backedUp atomic.Uint64 // refused: the source address is backing off
	failures atomic.Uint64 // failed password checks
}

// acquireCheck waits for a password check slot in the class of src;
// false (counted): none freed up within login.checkWait.
func (g *loginGuard) acquireCheck(lc config.Login, src string, suspect bool, now time.Time) bool {
	class := classUnknown
	switch {
	case suspect:
		class = classSuspect
	case g.trusted.has(src, now):
		class = classTrusted
	}
	if !g.checks.acquire(checkLimit(lc), lc.CheckWait.D(), class) {
		g.busy.Add(1)
		return false
	}
	return true
}

// succeeded records a successful password login from src.
func (g *loginGuard) succeeded(lc config.Login, src string, now time.Time) {
	g.backoff.succeeded(src)
	g.trusted.add(src, now, lc.BackoffAddresses)
}

// failed records a failed password login from src.
func (g *loginGuard) failed(lc config.Login, src string, now time.Time) {
	g.failures.Add(1)
	g.trusted.remove(src)
	if lc.FailureBackoff > 0 {
		g.backoff.failed(src, now, lc.FailuresBeforeBackoff, lc.FailureBackoff.D(), lc.FailureBackoffMax.D(), lc.BackoffAddresses)
	}
}

// checkSlots is a counting semaphore for password checks whose size can
// change with a config reload. Waiters queue in FIFO classes, and a freed
// slot goes to the oldest waiter of the first non-empty class: sources
// that logged in successfully before (trusted), then unknown ones, then
// those with failed logins on record (suspect). A flood of wrong
// passwords queues behind itself, and clients that reconnect from where
// they logged in before are checked first even when the attacker rotates
// through fresh addresses.
type checkSlots struct {
	mu      sync.Mutex
	inUse   int
	limit   int
	queues  [3]list.List // of chan struct{}, by class
	waiting int
}

// Classes of a password check's source address (checkSlots).
const (
	classTrusted = iota
	classUnknown
	classSuspect
)

// trustedFor is how long a source address that logged in successfully
// keeps priority for its password checks.
const trustedFor = 24 * time.Hour

// checkLimit is login.maxConcurrentChecks, 0 meaning one per CPU the
// broker may use: GOMAXPROCS as the process started, or now if more. The
// host may run the process on fewer Ps while it is lightly loaded (procs:
// auto); a burst of checks then queues for the P, and the host gives the
// process all of them back.
func checkLimit(l config.Login) int {
	if l.MaxConcurrentChecks > 0 {
		return l.MaxConcurrentChecks
	}
	return max(runtime.GOMAXPROCS(0), startProcs)
}

// startProcs is GOMAXPROCS when the package was initialised, before any
// change the host makes.
var startProcs = runtime.GOMAXPROCS(0)

// acquire takes a check slot, waiting up to wait in the queue of class;
// false: none was free.
func (s *checkSlots) acquire(limit int, wait time.Duration, class int) bool {
	s.mu.Lock()
	s.limit = limit
	if s.inUse < limit && s.waiting == 0 {
		s.inUse++
		s.mu.Unlock()
		return true
	}
	q := &s.queues[class]
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
		for i := 1; q.Len() == 0; i++ {
			q = &s.queues[i]
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

// trustedTable remembers, for trustedFor, the source addresses that
// logged in successfully, at most a configured number of them (the least
// recently successful is forgotten first).
type trustedTable struct {
	mu    sync.Mutex
	byKey map[string]*list.Element
	lru   list.List // of *trustedEntry, most recent first
}

type trustedEntry struct {
	key   string
	until time.Time
}

// add marks key trusted until now+trustedFor.
func (t *trustedTable) add(key string, now time.Time, size int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byKey == nil {
		t.byKey = make(map[string]*list.Element)
	}
	if el := t.byKey[key]; el != nil {
		el.Value.(*trustedEntry).until = now.Add(trustedFor)
		t.lru.MoveToFront(el)
		return
	}
	for t.lru.Len() >= size {
		el := t.lru.Back()
		delete(t.byKey, el.Value.(*trustedEntry).key)
		t.lru.Remove(el)
	}
	t.byKey[key] = t.lru.PushFront(&trustedEntry{key: key, until: now.Add(trustedFor)})
}

// has reports whether key is trusted at now.
func (t *trustedTable) has(key string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	el := t.byKey[key]
	return el != nil && now.Before(el.Value.(*trustedEntry).until)
}

// remove forgets key (a failed login from it).
func (t *trustedTable) remove(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if el := t.byKey[key]; el != nil {
		delete(t.byKey, key)
		t.lru.Remove(el)
	}
}

// len is the number of trusted addresses.
func (t *trustedTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lru.Len()
}
