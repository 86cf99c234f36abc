package server

import (
	"context"
	"sync"
	"time"

	"github.com/bollard-io/bollard/broker/store"
)

// Group limits of the committer: the most jobs and operations merged into
// one store commit.
const (
	maxGroupJobs = 512
	maxGroupOps  = 1 << 15
	commitQueue  = 4096
)

// job is one batch submitted to the committer. done is called from the
// committer goroutine, in submission order, once the batch committed (or
// failed); it must be quick and must not submit.
type job struct {
	b    *store.Batch // nil: nothing to write, only ordering
	done func(error)
}

// committer applies batches to the store in exactly the order they were
// submitted, merging the jobs that queued up while the previous commit was
// running into one commit (one fsync): group commit. The total order is
// what the store's queue rules need (a session's Seqs reach the store in
// increasing order), and submitters never wait on a lock while a commit
// runs. A failing merged commit is retried job by job so that one invalid
// batch fails alone.
type committer struct {
	st   store.Store
	ch   chan *job
	hist *histogram
	wg   sync.WaitGroup

	mu     sync.Mutex // guards closed against submit racing stop
	closed bool
}

func newCommitter(st store.Store, hist *histogram) *committer {
	c := &committer{st: st, ch: make(chan *job, commitQueue), hist: hist}
	c.wg.Add(1)
	go c.run()
	return c
}

// submit queues j. It blocks while the queue is full. After stop, j fails
// with store.ErrClosed.
func (c *committer) submit(j *job) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		j.finish(store.ErrClosed)
		return
	}
	c.ch <- j
	c.mu.Unlock()
}

// commit submits b and waits for its outcome.
func (c *committer) commit(b *store.Batch) error {
	done := make(chan error, 1)
	c.submit(&job{b: b, done: func(err error) { done <- err }})
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

func (j *job) finish(err error) {
	if j.done != nil {
		j.done(err)
	}
}

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
	for _, j := range group {
		j.finish(err)
	}
	clear(merged.Ops)
}

func (c *committer) applyEach(group []*job) {
	for _, j := range group {
		var err error
		if j.len() > 0 {
			err = c.timed(j.b)
		}
		j.finish(err)
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
