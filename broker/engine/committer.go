package engine

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bollard-io/bollard/broker/router"
	"github.com/bollard-io/bollard/broker/store"
)

// Group limits of the committer: the most jobs and operations merged into
// one store commit.
const (
	maxGroupJobs = 512
	maxGroupOps  = 1 << 15
	commitQueue  = 4096
)

// job is one batch submitted to the committer. Its onStored runs on the
// committer goroutine, in submission order, once the batch is stored (or
// failed); it must be quick and must not submit.
type job struct {
	b        *store.Batch // nil: nothing to write, only ordering
	onStored func(error)
	// extra is memory the job holds besides its operations (the
	// message of a publish), counted in the committer's flight budget.
	extra int64
	w     int64 // the job's weight in the flight budget, set by submit
	// fan, when set, is the fan-out of b: when a group commits, the queue
	// entries of all its fan-outs are settled together, one call per
	// session, before the first job of the group finishes (the job's
	// onStored still calls fan.Settle, which then applies only the
	// retained change).
	fan *router.Fanout
	// pub, when set, is the routed publish whose fan-out is fan: its
	// onStored (publish.onStored) runs instead of the job's, and releases
	// fan.
	pub publish
}

// Flight budget: the memory that submitted, not yet finished jobs hold
// (their batches' operations, the queue entries and records they point
// to, the fan-out state waiting to settle, and the write into Pebble) is
// estimated as opBytes per operation plus each job's extra bytes. Once it
// exceeds maxFlightBytes, publishers wait (throttle) before reading their
// next packet. Without it the memory in flight grows with publishers x
// Receive Maximum x fan-out: 16 publishers x 128 QoS 1 publishes x 100
// offline subscribers is 200,000 queue entries, over 100 MB of heap, and
// the GC target doubles that. maxFlightBytes still lets several groups of
// maxGroupOps share an fsync. 8 MiB rather than 16: the same ingest rate
// (16 publishers to 100 offline sessions), a ~20% lower rate of fan-out to
// 10,000 offline sessions, and ~10 MB less RSS while queueing a million
// messages (test/load, restart scenario), whose peak must stay under 100 MB.
const (
	opBytes        = 400
	maxFlightBytes = 8 << 20
)

// flightBudget counts the weight of the jobs in flight.
type flightBudget struct {
	mu   sync.Mutex
	cond sync.Cond
	used int64
}

func (f *flightBudget) add(w int64) {
	f.mu.Lock()
	f.used += w
	f.mu.Unlock()
}

func (f *flightBudget) release(w int64) {
	f.mu.Lock()
	f.used -= w
	if f.used <= maxFlightBytes {
		f.cond.Broadcast()
	}
	f.mu.Unlock()
}

// wait blocks while the jobs in flight exceed maxFlightBytes. Jobs always
// finish (committed, failed, or failed with store.ErrClosed after stop),
// so it does not block forever.
func (f *flightBudget) wait() {
	f.mu.Lock()
	for f.used > maxFlightBytes {
		f.cond.Wait()
	}
	f.mu.Unlock()
}

// committer applies batches to the store in exactly the order they were
// submitted, merging the jobs that queued up while the previous commit was
// running into one commit (one fsync): group commit. The total order is
// what the store's queue rules need (a session's Seqs reach the store in
// increasing order), and submitters never wait on a lock while a commit
// runs. A failing merged commit is retried job by job so that one invalid
// batch fails alone.
//
// With a store that implements store.Pipeliner the committer is a
// pipeline of two goroutines: run gathers a group and applies it
// (validation and the write into the memtable and WAL, in submission
// order), then hands it to settle, which waits for the group's fsync and
// finishes its jobs; meanwhile run already gathers and applies the next
// groups, up to pipelineDepth of them ahead. Pebble's WAL syncs whatever
// was written when a sync starts, so the groups applied during one fsync
// share the next one. Jobs still finish in submission order, each only
// after the fsync of its own group.
type committer struct {
	st   store.Store
	ch   chan *job
	hist *histogram
	wg   sync.WaitGroup

	mu     sync.Mutex // guards closed against submit racing stop
	closed bool

	flight flightBudget

	// jobs counts the submitted jobs not finished yet; once quiescing is
	// set (waitIdle), the finish that brings it to 0 signals idle.
	jobs      atomic.Int64
	quiescing atomic.Bool
	idle      chan struct{} // capacity 1

	// Used only by the goroutine that finishes jobs.
	fans    router.Settlement
	fanList []*router.Fanout

	// Inline commits (inlinecommit.go): the store when it allows them, the one
	// inline job in flight (owned by its submitter from startInline to
	// finishInline), and inlineWG, which settle waits on before it
	// finishes the jobs submitted after it.
	inliner  store.Pipeliner
	inl      inlineJob
	inlineWG sync.WaitGroup
	// inlineActive is set while an inline job is in flight; skipInline
	// (guarded by mu) counts the idle moments left without inline
	// commits (backOff).
	inlineActive atomic.Bool
	skipInline   int
}

// pipelineDepth is how many applied groups may wait for their fsync
// while run applies the next one. A replicated store's commits pass more
// stages (the leader's fsync, the network, a follower's fsync, the
// apply), and it once kept 16 in flight; the groups were then smaller,
// and every member paid per entry and per queue run: with 4, a 3-member
// cluster's ingest took 0.90x-0.94x the CPU per message at 1.05x-1.09x
// the rate, its latency rows within their noise (docs/durability.md).
const pipelineDepth = 4

// flight is one applied group on its way through settle.
type flight struct {
	jobs  []*job
	bs    []*store.Batch // the jobs' non-empty batches, committed as one
	sync  bool           // some batch is not NoSync
	wait  func() error   // the merged commit's fsync wait; nil: nothing to wait for
	err   error          // the merged commit's outcome when it was not applied
	each  []result       // per job, when the merged commit failed and jobs were retried alone
	start time.Time
}

type result struct {
	wait func() error
	err  error
}

func newCommitter(st store.Store, hist *histogram) *committer {
	c := &committer{st: st, ch: make(chan *job, commitQueue), hist: hist, idle: make(chan struct{}, 1)}
	c.flight.cond.L = &c.flight.mu
	c.wg.Add(1)
	if p, ok := st.(store.Pipeliner); ok {
		if in, ok := st.(interface{ InlineCommits() bool }); ok && in.InlineCommits() {
			c.inliner = p
		}
		go c.runPipelined(p)
	} else {
		go c.run()
	}
	return c
}

// submit queues j. It blocks while the queue is full. After stop, j fails
// with store.ErrClosed.
func (c *committer) submit(j *job) {
	c.mu.Lock()
	ok := c.enqueueLocked(j)
	c.mu.Unlock()
	if !ok {
		j.stored(store.ErrClosed)
	}
}

// enqueueLocked queues j, with committer.mu held; false after stop.
func (c *committer) enqueueLocked(j *job) bool {
	if c.closed {
		return false
	}
	c.count(j)
	c.ch <- j
	return true
}

// count counts j in flight (jobs and the flight budget) until finish.
func (c *committer) count(j *job) {
	if j.w = int64(j.len())*opBytes + j.extra; j.w > 0 {
		c.flight.add(j.w)
	}
	c.jobs.Add(1)
}

// throttle waits while the memory held by the jobs in flight is over
// budget. Only a connection's read loop calls it, between packets, so a
// publisher slows down instead of the broker's heap growing; it holds no
// lock while waiting.
func (c *committer) throttle() {
	c.flight.wait()
}

// finish releases j's flight weight and runs its onStored.
func (c *committer) finish(j *job, err error) {
	if j.w > 0 {
		c.flight.release(j.w)
		j.w = 0
	}
	j.stored(err)
	if c.jobs.Add(-1) == 0 && c.quiescing.Load() {
		select {
		case c.idle <- struct{}{}:
		default:
		}
	}
}

// waitIdle returns once every job submitted so far has finished (and no
// other is in flight), or with ctx's error.
func (c *committer) waitIdle(ctx context.Context) error {
	c.quiescing.Store(true)
	for c.jobs.Load() > 0 {
		select {
		case <-c.idle:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// commit submits b and waits for its outcome.
func (c *committer) commit(b *store.Batch) error {
	done := make(chan error, 1)
	c.submit(&job{b: b, onStored: func(err error) { done <- err }})
	return <-done
}

// stop commits what is queued and ends the committer.
func (c *committer) stop() {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		close(c.ch)
	}
	c.mu.Unlock()
	c.wg.Wait()
}

// stored runs the onStored of j: the publish's, or the job's own.
func (j *job) stored(err error) {
	if j.pub.srv != nil {
		j.pub.onStored(j.fan, j.b, err)
		return
	}
	if j.onStored != nil {
		j.onStored(err)
	}
}

// run is the serial committer, for stores that cannot pipeline.
func (c *committer) run() {
	defer c.wg.Done()
	group := make([]*job, 0, maxGroupJobs)
	var merged store.Batch
	for j := range c.ch {
		group = append(group[:0], j)
		group = c.gather(group)
		c.apply(group, &merged)
		clear(group)
	}
}

// runPipelined gathers and applies groups and hands them to settle.
func (c *committer) runPipelined(p store.Pipeliner) {
	defer c.wg.Done()
	pending := make(chan *flight, pipelineDepth)
	free := make(chan *flight, pipelineDepth+2)
	settled := make(chan struct{})
	go c.settle(pending, free, settled)
	for j := range c.ch {
		var f *flight
		select {
		case f = <-free:
		default:
			f = &flight{jobs: make([]*job, 0, maxGroupJobs), bs: make([]*store.Batch, 0, maxGroupJobs)}
		}
		f.jobs = c.gather(append(f.jobs[:0], j))
		c.applyNoWait(p, f)
		pending <- f
	}
	close(pending)
	<-settled
}

// applyNoWait applies f's jobs' batches as one store batch (without
// copying their operations), or one by one when that fails, without
// waiting for any fsync.
func (c *committer) applyNoWait(p store.Pipeliner, f *flight) {
	f.bs, f.sync = f.bs[:0], false
	for _, j := range f.jobs {
		if j.len() == 0 {
			continue
		}
		f.bs = append(f.bs, j.b)
		f.sync = f.sync || !j.b.NoSync
	}
	f.start = time.Now()
	if len(f.bs) > 0 {
		f.wait, f.err = p.CommitNoWait(context.Background(), f.bs...)
	}
	if f.err == nil || len(f.jobs) == 1 {
		return
	}
	f.err = nil
	f.each = make([]result, len(f.jobs))
	for i, j := range f.jobs {
		if j.len() > 0 {
			f.each[i].wait, f.each[i].err = p.CommitNoWait(context.Background(), j.b)
		}
	}
}

// settle waits for the fsync of each applied group, in order, and
// finishes its jobs.
func (c *committer) settle(pending <-chan *flight, free chan<- *flight, settled chan<- struct{}) {
	defer close(settled)
	for f := range pending {
		// Its jobs were submitted after an inline job still finishing on
		// its submitter's goroutine: that one finishes first.
		c.inlineWG.Wait()
		if f.each != nil {
			for i, j := range f.jobs {
				r := f.each[i]
				if r.wait != nil {
					r.err = r.wait()
				}
				c.finish(j, r.err)
			}
		} else {
			err := f.err
			if f.wait != nil {
				err = f.wait()
				if f.sync {
					c.hist.observe(time.Since(f.start))
				}
			}
			c.finishAll(f.jobs, err)
		}
		clear(f.jobs)
		clear(f.bs)
		f.jobs, f.wait, f.err, f.each = f.jobs[:0], nil, nil, nil
		select {
		case free <- f:
		default:
		}
	}
}

// gather adds the jobs already queued behind the first one.
func (c *committer) gather(group []*job) []*job {
	ops := group[0].len()
	for len(group) < maxGroupJobs && ops < maxGroupOps {
		select {
		case j, ok := <-c.ch:
			if !ok {
				return group
			}
			group = append(group, j)
			ops += j.len()
		default:
			return group
		}
	}
	return group
}

func (j *job) len() int {
	if j.b == nil {
		return 0
	}
	return j.b.Len()
}

// apply commits a group as one batch and finishes its jobs in order.
func (c *committer) apply(group []*job, merged *store.Batch) {
	merged.Reset()
	merged.NoSync = true
	for _, j := range group {
		if j.b == nil || j.b.Len() == 0 {
			continue
		}
		merged.Ops = append(merged.Ops, j.b.Ops...)
		merged.NoSync = merged.NoSync && j.b.NoSync
	}
	var err error
	if merged.Len() > 0 {
		err = c.timed(merged)
	}
	if err != nil && len(group) > 1 {
		c.applyEach(group)
		return
	}
	c.finishAll(group, err)
	clear(merged.Ops)
}

// finishAll finishes the jobs of a group that committed (or failed) as
// one, settling their fan-outs' queue entries together first.
func (c *committer) finishAll(group []*job, err error) {
	for _, j := range group {
		if j.fan != nil {
			c.fanList = append(c.fanList, j.fan)
		}
	}
	if len(c.fanList) > 1 {
		c.fans.Settle(c.fanList, err == nil)
	}
	clear(c.fanList)
	c.fanList = c.fanList[:0]
	for _, j := range group {
		c.finish(j, err)
	}
}

func (c *committer) applyEach(group []*job) {
	for _, j := range group {
		var err error
		if j.len() > 0 {
			err = c.timed(j.b)
		}
		c.finish(j, err)
	}
}

func (c *committer) timed(b *store.Batch) error {
	start := time.Now()
	err := c.st.Commit(context.Background(), b)
	if !b.NoSync {
		c.hist.observe(time.Since(start))
	}
	return err
}
