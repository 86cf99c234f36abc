package engine

import (
	"fmt"
	"runtime/debug"
	"sync/atomic"
	"time"
)

// Per-connection panic recovery.
//
// A panic in one connection's goroutines (the read loop with its packet
// handlers, which runs in ServeConn, and the writer) is recovered, logged
// with its stack, counted (bollard_connection_panics_total) and ends only
// that connection: its session is detached as at any disconnection, so the
// client can reconnect, and the broker keeps serving everyone else.
//
// Recovering is only safe when the panic left no shared lock held: the
// registry (Server.mu), the fan-out order (Server.seqMu), the connection's
// session and the router's trie are used by every other connection. Most
// of their critical sections release the lock by defer, so a panic inside
// them unwinds it, but route holds seqMu across the fan-out without defer
// (a defer there costs the hot path, and a panic in the middle of a
// fan-out would leave Seqs assigned in other sessions' queues that no
// batch stores). So after a panic, sharedStateFree checks that each of
// these locks can be taken within lockProbeWait; if one cannot, the panic
// is re-raised and the process stops, as an unrecovered panic always did:
// a restart recovers a consistent state from the store, a broker with a
// leaked lock would hang every client instead.
//
// Not protected (a panic there stops the process): the committer and its
// callbacks (shared by all connections, they settle many sessions at
// once), the expiry sweeper, and a panic during end (the detach of the
// session, which changes the registry).
//
// lockProbeWait bounds the wait for a shared lock after a panic: longer
// than any critical section legitimately holds one.
const lockProbeWait = 2 * time.Second

// connPanicHook, when set (tests only), is called by the read loop before
// each packet is dispatched and by the writer before each flush, so tests
// can inject a panic into one connection.
var connPanicHook atomic.Pointer[func(site, clientID string)]

func (c *conn) panicHook(site string) {
	if h := connPanicHook.Load(); h != nil {
		(*h)(site, c.clientID)
	}
}

// recovered handles a panic recovered in goroutine site of c: it logs and
// counts it and closes the connection, or re-panics when shared state was
// left locked. r is the value recover returned (nil: no panic).
func (c *conn) recovered(site string, r any) {
	if r == nil {
		return
	}
	stack := debug.Stack()
	c.srv.stats.panics.Add(1)
	c.log.Error("panic in a connection; closing it", "site", site, "client", c.clientID,
		"remote", c.nc.RemoteAddr().String(), "panic", fmt.Sprint(r), "stack", string(stack))
	c.closeNow()
	if !c.srv.sharedStateFree(c) {
		c.log.Error("panic left shared broker state locked; stopping", "site", site, "client", c.clientID)
		panic(r)
	}
}

// sharedStateFree reports whether the locks shared with other connections
// can be taken within lockProbeWait. A probe that finds a lock leaked
// leaves a goroutine blocked on it, but the process then stops anyway.
func (s *Server) sharedStateFree(c *conn) bool {
	probes := []func(){
		func() { s.seqMu.Lock(); s.seqMu.Unlock() }, //nolint:staticcheck // an empty critical section is the probe
		func() { s.mu.Lock(); s.mu.Unlock() },       //nolint:staticcheck // an empty critical section is the probe
		func() { s.router.Subscriptions() },
	}
	if sess := c.sess; sess != nil {
		probes = append(probes, func() { sess.Info() })
	}
	deadline := time.NewTimer(lockProbeWait)
	defer deadline.Stop()
	for _, probe := range probes {
		done := make(chan struct{})
		go func() { probe(); close(done) }()
		select {
		case <-done:
		case <-deadline.C:
			return false
		}
	}
	return true
}
