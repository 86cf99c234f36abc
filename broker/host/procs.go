package host

import (
	"context"
	"log/slog"
	"os"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bollard-io/bollard/broker/config"
)

// Adaptive Ps: how many threads run Go code at once (the runtime's
// GOMAXPROCS, its Ps) follows the load (config: procs).
//
// Most devices publish one message and wait for its acknowledgement. At
// that pace the broker has one goroutine to run at a time, two at most
// (the publisher's read loop, the subscriber's read loop for its PUBACK),
// and with a second idle P the runtime wakes a second thread for the
// second of two goroutines one network poll readied: a futex wake-up and
// a context switch on the path of every message, for work one thread does
// in microseconds (docs/architecture.md, "One message in flight"). With
// one P the window-1 QoS 1 and QoS 2 1 -> 1 rows ran 1.08x-1.11x faster
// (the QoS 0 one even or a few percent slower: README, issue 13). With
// many messages in flight or many busy connections, goroutines queue for
// one P and it is a bottleneck (4 publishers x 4 subscribers at window 1:
// 0.80x-0.95x). So the broker
// runs on one P while goroutines seldom wait for it, and on all of them
// (the runtime's own choice, which follows the container's CPU limit) as
// soon as they do:
//
//   - at one P, every procsTick: when at least procsUpShare of the
//     goroutines that started running waited procsLongWait or more for the
//     P (the runtime's /sched/latencies, sampled) in two ticks in a row,
//     or the process used procsUpCores of a core in one, it switches to
//     all Ps. One tick of waiting is not enough: at one message in flight
//     a tick samples some 50-80 starts, 0-5% of which waited, and one tick
//     in a few dozen reached the share by chance or because the machine's
//     other work kept the thread off its core (the round then ran its
//     rest on every P). Loads that do queue show 20-47% in their first
//     tick and every one after. The one-message-in-flight loads use
//     0.35-0.7 of a core at one P (fsyncs included); a load at 0.8 has
//     little room left on one P (4 x 4 at QoS 0: 0.67-0.9, with few
//     starts waiting);
//   - at all Ps, once the process used under procsDownCores of a core
//     over procsDownAfter, it switches to one P. A load that flips between
//     the two (queueing at one P, light at all) doubles that wait after
//     each flip, up to procsMaxDownAfter, so it settles at all Ps.
//
// A switch is runtime.GOMAXPROCS, a stop of the world of some tens of
// microseconds. procs: all in the config file, or GOMAXPROCS in the
// environment, turns this off.
const (
	procsTick       = 25 * time.Millisecond
	procsLongWait   = 50 * time.Microsecond
	procsUpShare    = 0.12
	procsMinSamples = 32 // fewer goroutine starts in a tick say nothing about queueing
	procsUpCores    = 0.8
	procsDownCores  = 0.6
	procsDownAfter  = time.Second
	// procsMaxDownAfter bounds the wait before a switch down after flips;
	// a load that stays at one P this long is settled, and forgets them.
	procsMaxDownAfter = time.Minute
	// procsFlip: a switch up this soon after a switch down is a flip.
	procsFlip = 10 * time.Second
)

// procsSample is what one tick measured.
type procsSample struct {
	dt     time.Duration
	cores  float64 // CPU the process used over dt, in cores
	starts uint64  // goroutine starts sampled by the runtime
	waited uint64  // of which waited procsLongWait or more for a P
}

// procsPolicy decides tick by tick between one P and the runtime's
// default; it holds no clock of its own, so tests drive it.
type procsPolicy struct {
	one bool // on one P now
	// queued: the tick before this one queued (at one P).
	queued bool
	// win and winCPU are the time on all Ps since the window began and
	// the CPU the process used in it, in core-seconds.
	win       time.Duration
	winCPU    float64
	downAfter time.Duration // the window: the wait before a switch down
	lastDown  time.Time
}

// newProcsPolicy starts on one P: a broker that has just become ready has
// no clients yet.
func newProcsPolicy() *procsPolicy {
	return &procsPolicy{one: true, downAfter: procsDownAfter}
}

// step takes the tick that ended at now and says whether to run on one P.
func (p *procsPolicy) step(now time.Time, s procsSample) (one bool) {
	if p.one {
		queueing := s.starts >= procsMinSamples && float64(s.waited) >= procsUpShare*float64(s.starts)
		twice := queueing && p.queued
		p.queued = queueing
		switch {
		case twice || s.cores >= procsUpCores:
			p.up()
			if !p.lastDown.IsZero() && now.Sub(p.lastDown) < procsFlip {
				p.downAfter = min(2*p.downAfter, procsMaxDownAfter)
			}
		case !p.lastDown.IsZero() && now.Sub(p.lastDown) >= procsMaxDownAfter:
			p.downAfter = procsDownAfter
		}
		return p.one
	}
	p.win += s.dt
	p.winCPU += s.cores * s.dt.Seconds()
	if p.win < p.downAfter {
		return false
	}
	if p.winCPU < procsDownCores*p.win.Seconds() {
		p.one, p.lastDown = true, now
	}
	p.win, p.winCPU = 0, 0
	return p.one
}

// up puts the policy on all Ps, with a new window.
func (p *procsPolicy) up() {
	p.one, p.queued, p.win, p.winCPU = false, false, 0, 0
}

// procsState is the process's: one controller sets the Ps of the whole
// process, and /metrics reports them.
var procsState struct {
	all      atomic.Bool   // procs: all in the applied config
	running  atomic.Bool   // a controller runs
	switches atomic.Uint64 // switches made
}

// applyProcsMode records the config's procs ("auto" or "all"); the
// controller reads it every tick.
func applyProcsMode(mode string) {
	procsState.all.Store(mode == config.ProcsAll)
}

// procsMeter reads what a tick needs: the process's CPU time and the
// runtime's scheduling latencies.
type procsMeter struct {
	samples []metrics.Sample
	last    time.Time
	cpu     time.Duration
	starts  uint64
	waited  uint64
}

func newProcsMeter(now time.Time) *procsMeter {
	m := &procsMeter{samples: []metrics.Sample{{Name: "/sched/latencies:seconds"}}, last: now}
	m.cpu, m.starts, m.waited = m.read()
	return m
}

// read returns the process's CPU time (user and system, every thread),
// and the goroutine starts the runtime sampled so far and those that had
// waited procsLongWait or more.
func (m *procsMeter) read() (cpu time.Duration, starts, waited uint64) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	metrics.Read(m.samples)
	if m.samples[0].Value.Kind() != metrics.KindFloat64Histogram {
		return cpu, 0, 0
	}
	h := m.samples[0].Value.Float64Histogram()
	// Buckets[i] is the lower bound of Counts[i].
	for i, c := range h.Counts {
		starts += c
		if h.Buckets[i] >= procsLongWait.Seconds() {
			waited += c
		}
	}
	return cpu, starts, waited
}

// tick measures the time since the last tick.
func (m *procsMeter) tick(now time.Time) (procsSample, bool) {
	cpu, starts, waited := m.read()
	s := procsSample{dt: now.Sub(m.last), starts: starts - m.starts, waited: waited - m.waited}
	if s.dt <= 0 {
		return s, false
	}
	s.cores = float64(cpu-m.cpu) / float64(s.dt)
	m.last, m.cpu, m.starts, m.waited = now, cpu, starts, waited
	return s, true
}

// runProcs adapts the process's Ps until ctx is done, then gives them
// back to the runtime. It returns at once when GOMAXPROCS is set in the
// environment, the runtime's default is one P anyway, or another
// controller runs. Going up is runtime.SetDefaultGOMAXPROCS, so the
// runtime follows the container's CPU limit again as it does on its own.
func runProcs(ctx context.Context, log *slog.Logger) {
	if _, set := os.LookupEnv("GOMAXPROCS"); set || runtime.GOMAXPROCS(0) <= 1 || !procsState.running.CompareAndSwap(false, true) {
		return
	}
	defer procsState.running.Store(false)
	set := func(one bool, s procsSample) {
		if one {
			runtime.GOMAXPROCS(1)
		} else {
			runtime.SetDefaultGOMAXPROCS()
		}
		procsState.switches.Add(1)
		log.Debug("procs switched", "procs", runtime.GOMAXPROCS(0), "cores_used", s.cores,
			"goroutine_starts", s.starts, "waited_long", s.waited)
	}
	// p.one is also the runtime's state: set follows every change of it.
	p := newProcsPolicy()
	if procsState.all.Load() {
		p.up()
	} else {
		set(true, procsSample{})
	}
	defer func() {
		if p.one {
			set(false, procsSample{})
		}
	}()
	t := time.NewTicker(procsTick)
	defer t.Stop()
	m := newProcsMeter(time.Now())
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s, ok := m.tick(now)
			if !ok {
				continue
			}
			was := p.one
			if procsState.all.Load() {
				p.up()
			} else {
				p.step(now, s)
			}
			if p.one != was {
				set(p.one, s)
			}
		}
	}
}
