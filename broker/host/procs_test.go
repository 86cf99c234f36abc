package host

import (
	"context"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"
)

// procsClock drives a procsPolicy tick by tick.
type procsClock struct {
	t    *testing.T
	p    *procsPolicy
	full int
	now  time.Time
}

func newProcsClock(t *testing.T, full int) *procsClock {
	return &procsClock{t: t, p: newProcsPolicy(), full: full, now: time.Unix(1_000_000, 0)}
}

// run feeds n ticks of s and returns the Ps after the last (1, or the
// clock's full number).
func (c *procsClock) run(n int, s procsSample) int {
	s.dt = procsTick
	got := c.full
	for range n {
		c.now = c.now.Add(procsTick)
		if c.p.step(c.now, s) {
			got = 1
		} else {
			got = c.full
		}
	}
	return got
}

// cur is the Ps the policy runs on now.
func (c *procsClock) cur() int {
	if c.p.one {
		return 1
	}
	return c.full
}

var (
	procsIdle     = procsSample{cores: 0.02}
	procsLight    = procsSample{cores: 0.5, starts: 120, waited: 6} // one message in flight: 5% waited
	procsQueueing = procsSample{cores: 0.7, starts: 400, waited: 80}
	procsBusy     = procsSample{cores: 0.95, starts: 10, waited: 0}
	procsHeavy    = procsSample{cores: 1.6, starts: 900, waited: 20} // at all Ps
)

func ticksOf(d time.Duration) int { return int(d / procsTick) }

func TestProcsPolicyStartsAtOneAndStaysForLightLoads(t *testing.T) {
	c := newProcsClock(t, 4)
	if got := c.run(1, procsIdle); got != 1 {
		t.Fatalf("idle: %d Ps, want 1", got)
	}
	if got := c.run(ticksOf(time.Minute), procsLight); got != 1 {
		t.Fatalf("a light load (5%% of goroutine starts waited): %d Ps, want 1", got)
	}
	// A tick of few goroutine starts says nothing about queueing, however
	// many of them waited.
	if got := c.run(1, procsSample{cores: 0.1, starts: procsMinSamples - 1, waited: procsMinSamples - 1}); got != 1 {
		t.Fatalf("a tick of %d starts: %d Ps, want 1", procsMinSamples-1, got)
	}
}

func TestProcsPolicyGoesUp(t *testing.T) {
	// A busy core: in its first tick.
	c := newProcsClock(t, 4)
	c.run(3, procsIdle)
	if got := c.run(1, procsBusy); got != 4 {
		t.Fatalf("%+v: %d Ps after one tick, want 4", procsBusy, got)
	}
	// Goroutines waiting for the one P: in the second tick in a row.
	c = newProcsClock(t, 4)
	c.run(3, procsIdle)
	if got := c.run(1, procsQueueing); got != 1 {
		t.Fatalf("one tick of queueing: %d Ps, want 1", got)
	}
	if got := c.run(1, procsQueueing); got != 4 {
		t.Fatalf("two ticks of queueing: %d Ps, want 4", got)
	}
	// Ticks of queueing apart from each other, however many, are noise
	// (a thread the machine's other work kept off its core).
	c = newProcsClock(t, 4)
	for range ticksOf(time.Minute) / 2 {
		c.run(1, procsQueueing)
		if got := c.run(1, procsLight); got != 1 {
			t.Fatalf("queueing every other tick: %d Ps, want 1", got)
		}
	}
	// Just under the busy core, as the one-message rows with fsyncs run
	// (0.7 of a core), with a tick of queueing now and then: stays.
	c = newProcsClock(t, 4)
	for range ticksOf(time.Minute) / 4 {
		c.run(3, procsSample{cores: procsUpCores - 0.01, starts: 120, waited: 2})
		if got := c.run(1, procsSample{cores: procsUpCores - 0.01, starts: 60, waited: 10}); got != 1 {
			t.Fatalf("just under %.1f of a core: %d Ps, want 1", procsUpCores, got)
		}
	}
	// Just under the share: stays.
	c = newProcsClock(t, 4)
	if got := c.run(10, procsSample{cores: 0.6, starts: 1000, waited: 1000*procsUpShare - 1}); got != 1 {
		t.Fatalf("just under the share: %d Ps, want 1", got)
	}
}

func TestProcsPolicyGoesDownAfterALightSecond(t *testing.T) {
	c := newProcsClock(t, 2)
	c.run(2, procsQueueing)
	// A second that averages 0.6 cores or more keeps all Ps, whatever
	// its ticks.
	c.run(ticksOf(procsDownAfter)/2, procsLight)
	if got := c.run(ticksOf(procsDownAfter)/2, procsSample{cores: 0.7}); got != 2 {
		t.Fatalf("a second at 0.6 cores: %d Ps, want 2", got)
	}
	if got := c.run(ticksOf(procsDownAfter)-1, procsLight); got != 2 {
		t.Fatalf("light for less than %s: %d Ps, want 2", procsDownAfter, got)
	}
	if got := c.run(1, procsLight); got != 1 {
		t.Fatalf("light for %s: %d Ps, want 1", procsDownAfter, got)
	}
	// Short bursts in a light window do not keep all Ps either (up so
	// soon after the switch down, a flip: the window is twice as long).
	c.run(2, procsQueueing)
	c.run(ticksOf(2*procsDownAfter)-2, procsLight)
	c.run(1, procsHeavy)
	if got := c.run(1, procsLight); got != 1 {
		t.Fatalf("a light second with one heavy tick: %d Ps, want 1", got)
	}
}

// A load that queues at one P and is light at all of them would switch
// every second; each flip doubles the wait before the next switch down.
func TestProcsPolicyFlipsSettleAtAllPs(t *testing.T) {
	c := newProcsClock(t, 2)
	c.run(2, procsQueueing)
	waits := []time.Duration{}
	for range 9 {
		below := 0
		for c.cur() != 1 {
			c.run(1, procsLight)
			below++
		}
		waits = append(waits, time.Duration(below)*procsTick)
		c.run(2, procsQueueing) // at one P it queues again: a flip
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second,
		32 * time.Second, time.Minute, time.Minute, time.Minute}
	for i := range want {
		if waits[i] != want[i] {
			t.Fatalf("waits before each switch down: %v, want %v", waits, want)
		}
	}
	// A load that stays at one P for procsMaxDownAfter forgets the flips.
	for c.cur() != 1 {
		c.run(1, procsLight)
	}
	c.run(ticksOf(procsMaxDownAfter), procsLight)
	c.run(2, procsQueueing)
	if got := c.run(ticksOf(procsDownAfter), procsLight); got != 1 {
		t.Fatalf("after a minute settled at one P, the wait is not back to %s", procsDownAfter)
	}
	// An up long after the down is not a flip either.
	c.run(ticksOf(procsFlip), procsLight)
	c.run(2, procsQueueing)
	if got := c.run(ticksOf(procsDownAfter), procsLight); got != 1 {
		t.Fatalf("an up %s after the down counted as a flip", procsFlip)
	}
}

// runProcs on the real runtime: one P when idle, all of them once
// goroutines queue for it, one again after a light second, all of them
// with procs: all, and all of them back when it stops.
func TestRunProcsFollowsTheLoad(t *testing.T) {
	full := runtime.GOMAXPROCS(0)
	if full < 2 {
		t.Skip("one CPU: nothing to adapt")
	}
	if v, ok := os.LookupEnv("GOMAXPROCS"); ok {
		t.Skipf("GOMAXPROCS=%s in the environment turns the controller off", v)
	}
	t.Cleanup(func() { runtime.GOMAXPROCS(full); applyProcsMode("auto") })
	applyProcsMode("auto")
	switches := procsState.switches.Load()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); runProcs(ctx, slog.New(slog.DiscardHandler)) }()
	defer func() { cancel(); <-done }()
	waitProcs := func(want int, what string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for runtime.GOMAXPROCS(0) != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: GOMAXPROCS %d, want %d", what, runtime.GOMAXPROCS(0), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitProcs(1, "idle")

	stop := make(chan struct{})
	wg := queueForAP(4, stop)
	waitProcs(full, "4 goroutines queueing for one P")
	close(stop)
	wg.Wait()
	waitProcs(1, "idle again")

	applyProcsMode("all")
	waitProcs(full, "procs: all")
	applyProcsMode("auto")
	waitProcs(1, "procs: auto again")

	cancel()
	<-done
	if got := runtime.GOMAXPROCS(0); got != full {
		t.Fatalf("after the controller stopped: GOMAXPROCS %d, want %d", got, full)
	}
	if n := procsState.switches.Load() - switches; n < 6 {
		t.Fatalf("%d switches counted, want at least 6", n)
	}
}

// A second controller in the process (tests run many brokers) does
// nothing while one runs.
func TestRunProcsOnePerProcess(t *testing.T) {
	if !procsState.running.CompareAndSwap(false, true) {
		t.Fatal("a controller is running")
	}
	defer procsState.running.Store(false)
	full := runtime.GOMAXPROCS(0)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	returned := make(chan struct{})
	go func() { defer close(returned); runProcs(ctx, slog.New(slog.DiscardHandler)) }()
	select {
	case <-returned:
	case <-time.After(500 * time.Millisecond):
		t.Fatal("a second controller runs")
	}
	if got := runtime.GOMAXPROCS(0); got != full {
		t.Fatalf("GOMAXPROCS %d, want %d", got, full)
	}
}

// queueForAP keeps n goroutines spinning in turns until stop is closed:
// at one P they queue for it.
func queueForAP(n int, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				deadline := time.Now().Add(200 * time.Microsecond)
				for time.Now().Before(deadline) {
				}
				runtime.Gosched()
			}
		})
	}
	return &wg
}
