package engine

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/broker/packet"
)

func TestBackoffTable(t *testing.T) {
	var tb backoffTable
	now := time.Unix(1000, 0)
	base, maxB := time.Second, 8*time.Second
	const free = 2
	// The first free failures are counted, not refused.
	for range free {
		tb.failed("a", now, free, base, maxB, 10)
		if blockedOnly(&tb, "a", now, maxB) {
			t.Fatal("blocked within the free failures")
		}
	}
	// Then 1s, 2s, 4s, 8s, 8s.
	for i, want := range []time.Duration{1, 2, 4, 8, 8} {
		tb.failed("a", now, free, base, maxB, 10)
		want *= time.Second
		if !blockedOnly(&tb, "a", now.Add(want-time.Millisecond), maxB) {
			t.Fatalf("failure %d: not blocked just before %v", i+free+1, want)
		}
		if blockedOnly(&tb, "a", now.Add(want), maxB) {
			t.Fatalf("failure %d: still blocked at %v", i+free+1, want)
		}
	}
	// A success clears the address.
	tb.succeeded("a")
	if blockedOnly(&tb, "a", now, maxB) || tb.len() != 0 {
		t.Fatal("success did not clear the back-off")
	}
	// A quiet period longer than the cap forgets earlier failures.
	for range free + 3 {
		tb.failed("b", now, free, base, maxB, 10)
	}
	later := now.Add(4*time.Second + maxB + time.Second)
	if blockedOnly(&tb, "b", later, maxB) || tb.len() != 0 {
		t.Fatal("old failures not forgotten")
	}
}

// An attacker rotating source addresses cannot grow the table beyond its
// bound; the least recently failed address is forgotten first.
func TestBackoffTableBounded(t *testing.T) {
	var tb backoffTable
	now := time.Unix(1000, 0)
	const size = 100
	tb.failed("first", now, 0, time.Minute, time.Hour, size)
	for i := range 100 * size {
		tb.failed(fmt.Sprintf("10.0.%d.%d", i/256, i%256), now, 0, time.Minute, time.Hour, size)
		if tb.len() > size {
			t.Fatalf("table holds %d addresses, bound %d", tb.len(), size)
		}
	}
	if blockedOnly(&tb, "first", now, time.Hour) {
		t.Error("the oldest address was not evicted")
	}
	if !blockedOnly(&tb, "10.0.39.15", now, time.Hour) { // the last one
		t.Error("the newest address was evicted")
	}
}

func TestSourceKey(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:1883":                "127.0.0.1",
		"[2001:db8:1:2:3:4:5:6]:1883":   "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::1]:40000":  "2001:db8:1:2::/64",
		"[::ffff:192.0.2.7]:1883":       "192.0.2.7",
		"not-an-address":                "not-an-address",
		"[2001:db8:1:3::1]:1":           "2001:db8:1:3::/64",
		"192.0.2.200:65535":             "192.0.2.200",
		"[fe80::1%eth0]:1883":           "fe80::1%eth0",
		"[2001:db8:aaaa:bbbb::1]:12345": "2001:db8:aaaa:bbbb::/64",
	} {
		addr := &net.UnixAddr{Name: in}
		if got := sourceKey(addr); got != want {
			t.Errorf("sourceKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCheckSlots(t *testing.T) {
	var s checkSlots
	for i := range 2 {
		if !s.acquire(2, time.Millisecond, classUnknown) {
			t.Fatalf("free slot %d refused", i)
		}
	}
	start := time.Now()
	if s.acquire(2, 50*time.Millisecond, classUnknown) {
		t.Fatal("a third slot of 2")
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("refused after %v, before the wait", d)
	}
	got := make(chan bool)
	go func() { got <- s.acquire(2, 5*time.Second, classUnknown) }()
	time.Sleep(20 * time.Millisecond)
	s.release()
	if !<-got {
		t.Fatal("a waiter did not get the released slot")
	}
	if s.inFlight() != 2 {
		t.Fatalf("in flight %d", s.inFlight())
	}
}

// slowAuth holds every password check until released, counting the
// checks running at once.
type slowAuth struct {
	gate    chan struct{}
	running atomic.Int32
	peak    atomic.Int32
}

func (a *slowAuth) Authenticate(ctx context.Context, _, user string, pass []byte, _ bool) (string, error) {
	n := a.running.Add(1)
	defer a.running.Add(-1)
	for {
		p := a.peak.Load()
		if n <= p || a.peak.CompareAndSwap(p, n) {
			break
		}
	}
	select {
	case <-a.gate:
	case <-ctx.Done():
	}
	return userAuth{}.Authenticate(ctx, "", user, pass, true)
}

func TestLoginChecksCapped(t *testing.T) {
	cfg := testConfig()
	cfg.Login.MaxConcurrentChecks = 2
	cfg.Login.CheckWait = config.Duration(200 * time.Millisecond)
	a := &slowAuth{gate: make(chan struct{})}
	b := startBrokerWith(t, cfg, WithAuthenticator(a, nil))
	login := func(version byte, id string) packet.ReasonCode {
		c := dialRaw(t, b.addr, version)
		ack := c.connect(&packet.Connect{ClientID: id, CleanStart: true, UsernameFlag: true, Username: "u",
			PasswordFlag: true, Password: []byte("pw")})
		return ack.ReasonCode
	}
	var wg sync.WaitGroup
	held := make([]packet.ReasonCode, 2)
	for i := range held {
		wg.Go(func() { held[i] = login(packet.V5, fmt.Sprint("held", i)) })
	}
	eventually(t, 5*time.Second, "two checks running", func() bool { return a.running.Load() == 2 })
	if rc := login(packet.V5, "busy5"); rc != packet.ServerBusy {
		t.Errorf("5.0 CONNECT over the cap: %v, want 0x89 Server busy", rc)
	}
	if rc := login(packet.V311, "busy3"); rc != packet.RefusedServerUnavailable {
		t.Errorf("3.1.1 CONNECT over the cap: %v, want 3", rc)
	}
	close(a.gate)
	wg.Wait()
	for i, rc := range held {
		if rc != packet.Success {
			t.Errorf("held login %d: %v", i, rc)
		}
	}
	if p := a.peak.Load(); p != 2 {
		t.Errorf("peak concurrent checks %d, cap 2", p)
	}
	if st := b.srv.Stats(); st.LoginRefusedBusy != 2 || st.LoginChecksInFlight != 0 {
		t.Errorf("stats: busy %d, in flight %d", st.LoginRefusedBusy, st.LoginChecksInFlight)
	}
	// Anonymous CONNECTs need no check slot.
	if rc := dialRaw(t, b.addr, packet.V5).connect(&packet.Connect{ClientID: "anon", CleanStart: true}).ReasonCode; rc != packet.Success {
		t.Errorf("anonymous: %v", rc)
	}
}

func TestLoginBackoffPerSource(t *testing.T) {
	cfg := testConfig()
	cfg.Login.FailuresBeforeBackoff = 2
	cfg.Login.FailureBackoff = config.Duration(time.Second)
	cfg.Login.FailureBackoffMax = config.Duration(4 * time.Second)
	b := startBrokerWith(t, cfg, WithAuthenticator(userAuth{}, nil))
	login := func(version byte, pass string) packet.ReasonCode {
		c := dialRaw(t, b.addr, version)
		return c.connect(&packet.Connect{ClientID: "c", CleanStart: true, UsernameFlag: true, Username: "u",
			PasswordFlag: true, Password: []byte(pass)}).ReasonCode
	}
	for i := range 3 { // two free failures, then the back-off starts
		if rc := login(packet.V5, "wrong"); rc != packet.BadUserNameOrPassword {
			t.Fatalf("failure %d: %v", i, rc)
		}
	}
	// Even the right password is refused at once while backing off.
	if rc := login(packet.V5, "pw"); rc != packet.ConnectionRateExceeded {
		t.Fatalf("during back-off: %v, want 0x9F", rc)
	}
	if rc := login(packet.V311, "pw"); rc != packet.RefusedServerUnavailable {
		t.Fatalf("3.1.1 during back-off: %v, want 3", rc)
	}
	b.clock.Advance(time.Second)
	if rc := login(packet.V5, "wrong"); rc != packet.BadUserNameOrPassword {
		t.Fatalf("after the back-off: %v", rc)
	}
	// The next back-off is twice as long.
	b.clock.Advance(time.Second + 500*time.Millisecond)
	if rc := login(packet.V5, "pw"); rc != packet.ConnectionRateExceeded {
		t.Fatalf("second back-off: %v, want 0x9F", rc)
	}
	b.clock.Advance(time.Second)
	if rc := login(packet.V5, "pw"); rc != packet.Success {
		t.Fatalf("after the second back-off: %v", rc)
	}
	st := b.srv.Stats()
	if st.LoginFailures != 4 || st.LoginRefusedBackoff != 3 || st.LoginBackoffAddresses != 0 {
		t.Errorf("stats: failures %d, backoff refusals %d, addresses %d", st.LoginFailures, st.LoginRefusedBackoff, st.LoginBackoffAddresses)
	}
	// The back-off is hot: failureBackoff 0 turns it off.
	off := cfg.Clone()
	off.Login.FailureBackoff = 0
	if _, err := b.srv.ApplyConfig(off); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		login(packet.V5, "wrong")
	}
	if rc := login(packet.V5, "pw"); rc != packet.Success {
		t.Fatalf("with the back-off off: %v", rc)
	}
}

func blockedOnly(tb *backoffTable, key string, now time.Time, max time.Duration) bool {
	b, _ := tb.blocked(key, now, max)
	return b
}

// A freed slot goes to trusted sources first, then unknown, then
// suspect ones, each class in order.
func TestCheckSlotsClasses(t *testing.T) {
	var s checkSlots
	if !s.acquire(1, time.Millisecond, classUnknown) {
		t.Fatal("free slot refused")
	}
	order := make(chan string, 4)
	var wg sync.WaitGroup
	start := func(name string, class int) {
		wg.Go(func() {
			if s.acquire(1, 5*time.Second, class) {
				order <- name
				time.Sleep(10 * time.Millisecond)
				s.release()
			}
		})
	}
	waiting := func(n int) func() bool {
		return func() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.waiting == n }
	}
	start("suspect1", classSuspect)
	eventually(t, time.Second, "one queued", waiting(1))
	start("unknown", classUnknown)
	eventually(t, time.Second, "two queued", waiting(2))
	start("suspect2", classSuspect)
	eventually(t, time.Second, "three queued", waiting(3))
	start("trusted", classTrusted)
	eventually(t, time.Second, "four queued", waiting(4))
	s.release()
	wg.Wait()
	close(order)
	var got []string
	for n := range order {
		got = append(got, n)
	}
	if fmt.Sprint(got) != "[trusted unknown suspect1 suspect2]" {
		t.Fatalf("order %v", got)
	}
	if s.inFlight() != 0 || s.waiting != 0 {
		t.Fatalf("in flight %d, waiting %d", s.inFlight(), s.waiting)
	}
}

func TestTrustedTable(t *testing.T) {
	var tt trustedTable
	now := time.Unix(1000, 0)
	tt.add("a", now, 2)
	if !tt.has("a", now.Add(trustedFor-time.Second)) || tt.has("a", now.Add(trustedFor)) {
		t.Fatal("trust does not last trustedFor")
	}
	tt.add("b", now, 2)
	tt.add("c", now, 2) // evicts a
	if tt.has("a", now) || !tt.has("c", now) || tt.len() != 2 {
		t.Fatalf("bound not kept: len %d", tt.len())
	}
	tt.remove("c")
	if tt.has("c", now) {
		t.Fatal("removed address still trusted")
	}
}

// Password checks run one per CPU the broker may use, not one per P it
// runs on now: the host lowers GOMAXPROCS while the broker is lightly
// loaded (procs: auto), and a burst of logins must not find one slot.
func TestCheckLimitFollowsTheCPUsNotThePs(t *testing.T) {
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	if got := checkLimit(config.Login{}); got != startProcs {
		t.Fatalf("at one P: %d check slots, want %d", got, startProcs)
	}
	if got := checkLimit(config.Login{MaxConcurrentChecks: 3}); got != 3 {
		t.Fatalf("maxConcurrentChecks 3: %d slots", got)
	}
}
