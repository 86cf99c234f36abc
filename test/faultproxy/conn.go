package faultproxy

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// conn is one proxied connection: the accepted client side and, once
// dialled, the upstream side to the target.
type conn struct {
	p      *Proxy
	client net.Conn
	ctx    context.Context // cancelled on abort: ends the dial
	cancel context.CancelFunc
	done   chan struct{} // closed on abort
	// broken: a blackhole discarded bytes or a FIN of this connection, or
	// it was accepted during one; Heal closes it.
	broken atomic.Bool

	mu       sync.Mutex
	upstream net.Conn
	aborted  bool
}

func newConn(p *Proxy, client net.Conn) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	return &conn{p: p, client: client, ctx: ctx, cancel: cancel, done: make(chan struct{})}
}

// abort closes both sides (with a RST when rst is set); every goroutine
// of the connection then ends. It is idempotent.
func (c *conn) abort(rst bool) {
	c.mu.Lock()
	if c.aborted {
		c.mu.Unlock()
		return
	}
	c.aborted = true
	close(c.done)
	c.cancel()
	up := c.upstream
	c.mu.Unlock()
	closeConn(c.client, rst)
	if up != nil {
		closeConn(up, rst)
	}
}

func (c *conn) aborting() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// setUpstream records the dialled side, unless the connection was
// aborted meanwhile.
func (c *conn) setUpstream(up net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.aborted {
		return false
	}
	c.upstream = up
	return true
}

// lost marks the connection broken by a blackhole. If the blackhole was
// healed since the caller saw it, Heal may have missed the mark: the
// connection closes itself.
func (c *conn) lost() {
	c.broken.Store(true)
	if !c.p.blackholed() {
		c.abort(false)
	}
}

func (c *conn) run(target string, orphan bool) {
	defer c.p.finish(c)
	defer c.abort(false)
	if orphan {
		c.discard()
		return
	}
	d := net.Dialer{Timeout: c.p.cfg.dialTimeout}
	up, err := d.DialContext(c.ctx, "tcp", target)
	if err != nil {
		if !c.aborting() {
			c.p.stats.dialFailed.Add(1)
		}
		c.abort(true)
		return
	}
	if !c.setUpstream(up) {
		closeConn(up, true)
		return
	}
	c.p.stats.forwarded.Add(1)
	s := &c.p.stats
	pipes := []*pipe{
		newPipe(c, c.client, up, &s.toTarget, &s.discardedToTarget),
		newPipe(c, up, c.client, &s.toClient, &s.discardedToClient),
	}
	var wg sync.WaitGroup
	for _, pp := range pipes {
		wg.Add(2)
		go func() { defer wg.Done(); pp.read() }()
		go func() { defer wg.Done(); pp.write() }()
	}
	wg.Wait()
}

// discard reads and drops what a never-dialled client sends until the
// connection ends.
func (c *conn) discard() {
	bp := c.p.pool.Get().(*[]byte)
	defer c.p.pool.Put(bp)
	for {
		n, err := c.client.Read(*bp)
		c.p.stats.discardedToTarget.Add(int64(n))
		if err != nil {
			return
		}
	}
}

// chunk is what one read returned, due for writing at due; eof stands for
// the FIN that ended the stream.
type chunk struct {
	buf *[]byte
	n   int
	due time.Time
	eof bool
}

// pipe is one direction of a connection: a reader that stamps chunks and
// a writer that writes them when due, in order.
type pipe struct {
	c        *conn
	src, dst net.Conn
	q        chan chunk
	queued   atomic.Int64 // bytes in q or being written

	fwd, lostN *atomic.Int64
}

func newPipe(c *conn, src, dst net.Conn, fwd, lostN *atomic.Int64) *pipe {
	// The writer holds one chunk besides the queue: together at most
	// maxQueued bytes.
	return &pipe{c: c, src: src, dst: dst, fwd: fwd, lostN: lostN,
		q: make(chan chunk, c.p.cfg.maxQueued/c.p.cfg.chunkSize-1)}
}

func (pp *pipe) read() {
	defer close(pp.q)
	p := pp.c.p
	for {
		bp := p.pool.Get().(*[]byte)
		n, err := pp.src.Read(*bp)
		due := time.Now().Add(time.Duration(p.delay.Load()))
		switch {
		case n == 0:
			p.pool.Put(bp)
		case p.blackholed():
			p.pool.Put(bp)
			pp.lostN.Add(int64(n))
			pp.c.lost()
		case !pp.push(chunk{buf: bp, n: n, due: due}):
			return
		}
		if errors.Is(err, io.EOF) {
			if p.blackholed() {
				pp.c.lost() // the FIN is lost too
				return
			}
			pp.push(chunk{due: due, eof: true})
			return
		}
		if err != nil {
			// A reset from one peer resets the other.
			pp.c.abort(errors.Is(err, syscall.ECONNRESET))
			return
		}
	}
}

// push queues ch, waiting while the queue is full; false if the
// connection was aborted meanwhile.
func (pp *pipe) push(ch chunk) bool {
	select {
	case pp.q <- ch:
		pp.c.p.stats.queued(pp.queued.Add(int64(ch.n)))
		return true
	case <-pp.c.done:
		if ch.buf != nil {
			pp.c.p.pool.Put(ch.buf)
		}
		return false
	}
}

func (pp *pipe) write() {
	var timer *time.Timer
	for ch := range pp.q {
		if !pp.c.aborting() {
			pp.deliver(ch, &timer)
		}
		pp.queued.Add(-int64(ch.n))
		if ch.buf != nil {
			pp.c.p.pool.Put(ch.buf)
		}
	}
	if timer != nil {
		timer.Stop()
	}
}

// deliver waits until ch is due and writes it, unless a blackhole
// swallows it.
func (pp *pipe) deliver(ch chunk, timer **time.Timer) {
	if wait := time.Until(ch.due); wait > 0 {
		if *timer == nil {
			*timer = time.NewTimer(wait)
		} else {
			(*timer).Reset(wait)
		}
		select {
		case <-(*timer).C:
		case <-pp.c.done:
			return
		}
	}
	if pp.c.p.blackholed() {
		pp.lostN.Add(int64(ch.n))
		pp.c.lost()
		return
	}
	if ch.eof {
		if tc, ok := pp.dst.(*net.TCPConn); ok {
			if tc.CloseWrite() != nil {
				pp.c.abort(false)
			}
		}
		return
	}
	if _, err := pp.dst.Write((*ch.buf)[:ch.n]); err != nil {
		pp.c.abort(false)
		return
	}
	pp.fwd.Add(int64(ch.n))
}
