package engine

import (
	"context"
	"time"

	"github.com/bollard-io/bollard/broker/store"
)

// Inline commits. A lone commit through the pipelined committer crosses
// goroutines three times before its fsync starts and again after: the
// submitter wakes run, run applies and wakes Pebble's WAL flusher, the
// flusher's fsync wakes settle, and settle's onStored wakes the writer
// goroutine that sends the acknowledgement. At one message in flight
// those wake-ups (often a thread's each) are a large share of the round
// trip beside the fsync itself. So when the committer is idle (no job in
// flight, none queued), a publish that came alone (route) is committed by
// the publisher's read loop: it applies the batch, waits for the fsync and
// runs onStored itself, queueing the PUBACK for its own endDefer to write
// and writing to a subscriber it made deliverable (the inline wake list).
//
// Ordering is the committer's: the inline job is applied under
// committer.mu, which every submit takes, so a job submitted after it is
// applied after it (run takes it from the channel later), and settle
// finishes such jobs only after the inline one finished (inlineWG): jobs
// still finish in submission order. A job that arrives while an inline
// one is in flight goes through the channel as before and joins the next
// group (the WAL syncs what was written meanwhile with the next fsync):
// it never waits for a serial fsync behind the inline one longer than it
// would have behind a pipelined group. At most one inline job is in
// flight, because one starts only when no job is.
//
// Only stores that say their CommitNoWait does no I/O beyond writing to
// memory (InlineCommits: pebblestore) take inline commits; a replicated
// store's CommitNoWait may wait for the log, and it keeps the pipeline.

// inlineJob is the one inline job in flight.
type inlineJob struct {
	j     *job
	wait  func() error // nil: nothing to wait for
	err   error        // CommitNoWait's error
	sync  bool         // the batch waits for an fsync
	start time.Time
}

// startInline submits j as an inline job when the committer is idle and
// takes inline commits, returning true with committer.mu held: the caller
// then calls applyInline (which releases it) and finishInline, on the same
// goroutine. Otherwise it submits j through the channel and returns false.
// The caller may hold Server.seqMu (route): the batch's place in the
// commit order is taken here, under it, while its application can wait
// until seqMu is released.
func (c *committer) startInline(j *job) bool {
	c.mu.Lock()
	if !c.inlineOK(j) {
		if c.inlineActive.Load() && j.fsyncs() {
			// Another commit to fsync while an inline one waits for its
			// own: the submitters overlap, and through the pipeline they
			// would have shared the fsync.
			c.skipInline = inlineBackoff
		}
		ok := c.enqueueLocked(j)
		c.mu.Unlock()
		if !ok {
			j.stored(store.ErrClosed)
		}
		return false
	}
	c.count(j)
	c.wg.Add(1) // stop waits for the inline job's finish
	c.inlineWG.Add(1)
	c.inlineActive.Store(true)
	c.inl = inlineJob{j: j}
	return true
}

// applyInline applies the inline job's batch without waiting for its
// fsync and releases committer.mu, which startInline left held.
func (c *committer) applyInline() {
	in := &c.inl
	in.start = time.Now()
	if b := in.j.b; b != nil && b.Len() > 0 {
		in.sync = !b.NoSync
		in.wait, in.err = c.inliner.CommitNoWait(context.Background(), b)
	}
	c.mu.Unlock()
}

// finishInline waits for the inline job's fsync and finishes it (its
// onStored runs here, on the submitter's goroutine).
//
// A panic in onStored (which the read loop may recover) must not wedge the
// committer: settle and stop would wait for this job forever. So the job
// is counted done whatever happens.
func (c *committer) finishInline() {
	defer c.wg.Done()
	defer c.inlineWG.Done()
	in := c.inl
	c.inl = inlineJob{} // the next inline job starts only once this one finished
	err := in.err
	if in.wait != nil {
		err = in.wait()
		if in.sync {
			c.hist.observe(time.Since(in.start))
		}
	}
	c.inlineActive.Store(false)
	c.finish(in.j, err)
}

// inlineBackoff is how many times an idle committer declines an inline
// commit after submitters overlapped with one (see backOff).
const inlineBackoff = 16

// inlineOK reports whether j may commit inline, and backOff whether an
// idle committer declines an inline commit that needs an fsync, counting
// down; committer.mu is held. Several publishers with one message
// in flight each tend to publish at the same moment (their
// acknowledgements went out together): through the pipeline, the first
// one's commit is applied a hand-off later, by when the others queued
// behind it, and one fsync serves them all; committed inline at once, it
// takes an fsync of its own and the others the next one (measured: 4
// publishers x 4 subscribers at window 1, ~10% fewer deliveries). So once
// another commit that needs an fsync arrives while an inline one waits for
// its own, the next inlineBackoff idle moments use the pipeline, and the
// one after tries inline again.
func (c *committer) inlineOK(j *job) bool {
	if c.closed || c.inliner == nil || c.jobs.Load() != 0 {
		return false
	}
	return !j.fsyncs() || !c.backOff() // a NoSync job shares no fsync
}

// fsyncs reports whether j's batch waits for an fsync.
func (j *job) fsyncs() bool { return j.len() > 0 && !j.b.NoSync }

func (c *committer) backOff() bool {
	if c.skipInline == 0 {
		return false
	}
	c.skipInline--
	return true
}

// finishInline finishes the inline job of a publish that came alone (see
// route), collecting the connections its onStored makes deliverable in
// the publisher's wakeList and writing to them as route does: a
// persistent subscriber's delivery is then written by this read loop too,
// before the publisher's acknowledgement (which its own endDefer writes).
// After a panic in onStored the listed connections are still written to
// or woken (a connection left listed would not be woken by a list again).
func (s *Server) finishInline(wl *wakeList) {
	wl.open()
	s.inlineWakes.Store(wl)
	defer wl.flush()
	defer s.inlineWakes.Store(nil)
	s.com.finishInline()
}
