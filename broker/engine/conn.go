package engine

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bollard-io/bollard/broker/packet"
	"github.com/bollard-io/bollard/broker/session"
	"github.com/bollard-io/bollard/broker/store"
)

const (
	reasonShuttingDown = packet.ServerShuttingDown
	// writeTimeout bounds one write to a client; a client that does not
	// read for that long is disconnected.
	writeTimeout = 30 * time.Second
	// takeoverWait bounds how long a new connection waits for the one it
	// takes over to finish.
	takeoverWait = 10 * time.Second
	// pendingWait bounds how long a closing connection waits for its
	// submitted commits before its session is detached.
	pendingWait = 10 * time.Second
	// closeGrace bounds the final flush of a closing connection.
	closeGrace = time.Second
)

// conn is one client connection: the read loop runs in ServeConn's
// goroutine, writeLoop in its own.
type conn struct {
	srv *Server
	nc  net.Conn
	log *slog.Logger
	r   *packet.Reader

	// Set while handling CONNECT, read-only afterwards.
	version         byte
	clientID        string
	principal       string
	entry           *sessionEntry
	sess            *session.Session
	keepAlive       time.Duration
	keepAliveCapped bool   // keepAlive is limits.maxKeepAlive, not the client's
	connectExpiry   uint32 // expiry the client asked for (5.0 DISCONNECT rule)
	expiryZero      bool   // delete the session at disconnection
	sendMax         uint32 // client's Maximum Packet Size; 0: none
	aliasMax        uint16 // client's Topic Alias Maximum (outbound aliases)
	inAliasMax      uint16 // ours (inbound aliases)
	// refusedBy is the limit that refused this CONNECT (counted by
	// refusals.count): the one log line of the refusal names it.
	refusedBy string

	inAliases  map[uint16]string // read loop only
	outAliases map[string]uint16 // writer only

	// acks gathers the Dequeues of acknowledgements (PUBACK, PUBCOMP) read
	// in one burst, submitted as one batch (read loop only); see flushAcks.
	acks *store.Batch
	// ackSpare is an empty acknowledgement batch kept for the next burst
	// (a clean session's acknowledgements store nothing); read loop only.
	ackSpare *store.Batch

	outMu sync.Mutex
	out   []byte // encoded control packets waiting for the writer
	// ackOut is the PUBACK or PUBREC queueAck encodes, under outMu.
	ackOut struct {
		puback packet.Puback
		pubrec packet.Pubrec
	}
	outMax int
	wake   chan struct{}
	// wmu is the write lock: whoever holds it owns w and writes to the
	// socket (the writer goroutine, or an inline flush; see notify).
	wmu sync.Mutex
	w   writer
	// raw is the socket for inline writes; nil: only the writer writes.
	raw       syscall.RawConn
	wakeState atomic.Int32 // deferring, wakeWanted (read loop; see notify)
	wakes     wakeList     // the fan-out of this connection's publish (read loop)
	listed    atomic.Bool  // c is in some connection's wakes
	burst     int          // packets dispatched since the last endDefer (read loop)
	closing   chan struct{}
	closer    sync.Once
	// sockCloser runs closeNow's socket close once.
	sockCloser sync.Once
	// grace closes the socket closeGrace after close; serve stops it when
	// the connection ended first, so the timer does not keep the closed
	// connection (and its buffers) reachable for closeGrace.
	graceMu sync.Mutex
	grace   *time.Timer
	ended   bool
	wdone   chan struct{} // writer ended
	done    chan struct{} // connection fully cleaned up

	// dispatchMu is held by the read loop while it dispatches a packet:
	// Quiesce waits for it (uncontended otherwise). Deliveries are taken
	// under wmu, which Quiesce waits for too (waitStaged).
	dispatchMu sync.Mutex

	inflight chan struct{}  // slots of QoS 1/2 publishes not yet acknowledged
	pending  atomic.Int64   // jobs submitted to the committer, not finished
	pendWG   sync.WaitGroup // the same jobs; Add only in the read loop

	endMu     sync.Mutex
	keepWill  bool // the will is published at the end
	newExpiry *uint32
	connected atomic.Bool // set after CONNECT; version and clientID are final then
	writing   bool        // the writer was started (serve's goroutine only)
}

// ServeConn serves one accepted connection and returns when it ends, so
// listeners call it in a goroutine of their own (also for WebSocket-wrapped
// connections). It closes nc at once while the server is not ready: before
// Start has returned, or once Drain has begun.
func (s *Server) ServeConn(nc net.Conn) {
	s.mu.Lock()
	if !s.Ready() {
		s.mu.Unlock()
		_ = nc.Close()
		return
	}
	if limit := openConnLimit(s.config().Limits.MaxConnections); limit > 0 && len(s.conns) >= limit {
		s.mu.Unlock()
		s.refused.add(s.log, LimitConnections, "open", limit, "remote", nc.RemoteAddr().String())
		_ = nc.Close()
		return
	}
	c := s.newConn(nc)
	s.conns[c] = struct{}{}
	s.connWG.Add(1)
	s.mu.Unlock()
	defer s.connWG.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	c.serve()
}

// openConnLimit bounds the connections held open at all, including those
// that have not sent CONNECT yet (which limits.maxConnections, counted at
// CONNECT, does not see): a quarter more than maxConnections plus room for
// takeovers in progress. 0 means no limit.
func openConnLimit(maxConnections int) int {
	if maxConnections <= 0 {
		return 0
	}
	return maxConnections + maxConnections/4 + 16
}

func (s *Server) newConn(nc net.Conn) *conn {
	c := &conn{
		srv: s, nc: countingConn{Conn: nc, n: &s.stats.bytesIn}, log: s.log,
		wake: make(chan struct{}, 1), closing: make(chan struct{}),
		wdone: make(chan struct{}), done: make(chan struct{}), keepWill: true,
		raw: rawConnOf(nc),
	}
	c.w.c = c
	return c
}

// countingConn counts the bytes read from a client.
type countingConn struct {
	net.Conn
	n *atomic.Uint64
}

func (c countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.n.Add(uint64(n))
	return n, err
}

func (c *conn) serve() {
	defer close(c.done)
	defer c.stopGrace()
	defer c.nc.Close()
	var connected bool
	ok := c.protect("connect", func() { connected = c.connect() })
	switch {
	case connected:
		c.protect("read loop", c.readLoop)
		if c.wakeState.Swap(noDeferring)&wakeWanted != 0 {
			c.wakeWriter() // after a panic in the read loop
		}
		c.end()
	case !ok && c.claimed():
		// A panic after the session was claimed: detach it all the same.
		if !c.writing {
			close(c.wdone)
		}
		c.end()
	}
}

// claimed reports whether c holds its session.
func (c *conn) claimed() bool {
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	return c.entry != nil && c.entry.owner == c
}

// connect reads and handles CONNECT; false: the connection is refused.
func (c *conn) connect() bool {
	cp := c.readConnect()
	return cp != nil && c.handleConnect(cp)
}

// readConnect reads the first packet within limits.connectTimeout and
// returns it if it is a CONNECT; nil: the connection is refused (a
// CONNECT that fails to decode is answered when its version allows).
func (c *conn) readConnect() *packet.Connect {
	cfg := c.srv.config()
	var src io.Reader = c.nc
	if rr := newRawReader(c.raw, &c.srv.stats.bytesIn); rr != nil {
		src = rr
	}
	c.r = packet.NewReader(src, 0, cfg.Limits.MaxPacketSize)
	c.r.Options = decodeOptions(cfg)
	_ = c.nc.SetReadDeadline(time.Now().Add(cfg.Limits.ConnectTimeout.D()))
	p, err := c.r.ReadPacket()
	cp, _ := p.(*packet.Connect)
	if err == nil && cp == nil {
		err = fmt.Errorf("the first packet is %s, not CONNECT: %w", p.Type(), packet.ErrProtocol)
	}
	if err != nil {
		c.countLimit(err)
		i := connectErrReason(err)
		attrs := []any{"remote", c.nc.RemoteAddr().String()}
		if cp != nil && cp.ProtocolVersion != 0 {
			// Answered when the version allows. One line for the event:
			// the connection error's, which says what was wrong, with the
			// answer's code and the limit that refused it; the refusal's
			// only when it is not a connection error.
			c.version = cp.ProtocolVersion
			ack := &packet.Connack{ReasonCode: packet.ReasonCodeOf(err)}
			if i == notConnErr {
				c.sendRefusal(ack)
			} else {
				c.writeRefusal(ack)
				attrs = c.refusalAttrs(ack.ReasonCode, attrs...)
			}
		}
		c.log.Debug("connection refused before CONNECT", "remote", c.nc.RemoteAddr().String(), "err", err)
		if i != notConnErr {
			c.srv.connErrs.add(c.log, c.srv.now(), i, err, attrs...)
		}
		return nil
	}
	return cp
}

// protect runs f and recovers a panic in it (see recovered); ok is false
// after a panic.
func (c *conn) protect(site string, f func()) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			c.recovered(site, r)
			ok = false
		}
	}()
	f()
	return true
}

// readLoop reads and dispatches packets until the connection ends.
func (c *conn) readLoop() {
	for {
		if c.keepAlive > 0 {
			_ = c.nc.SetReadDeadline(time.Now().Add(c.keepAlive * 3 / 2))
		} else {
			_ = c.nc.SetReadDeadline(time.Time{})
		}
		buffered := packetBuffered(c.r.R)
		if c.acks != nil && (c.acks.Len() >= maxAckBatch || !buffered) {
			c.flushAcks()
		}
		if !buffered {
			c.endDefer() // write what the packets read so far made sendable
		}
		p, err := c.r.ReadPacket()
		if err != nil {
			c.flushAcks()
			c.endDefer()
			c.readError(err)
			return
		}
		c.deferWakes(p)
		if !c.dispatchOrHold(p) {
			c.flushAcks()
			c.endDefer()
			return
		}
		// Nothing keeps a dispatched PUBLISH or acknowledgement (a
		// publish on its way keeps a pubAck, not the packet).
		c.r.Recycle(p)
	}
}

// dispatchOrHold dispatches p, unless the server quiesced (Quiesce): then
// p is dropped and the read loop waits for the handover to close the
// connection. The acknowledgements gathered so far are submitted either
// way, before Quiesce waits for the commits in flight.
func (c *conn) dispatchOrHold(p packet.Packet) bool {
	c.dispatchMu.Lock()
	if c.srv.quiesced.Load() {
		c.flushAcks()
		c.dispatchMu.Unlock()
		c.endDefer() // from here the writer goroutine sends what is owed
		<-c.closing
		return false
	}
	defer c.dispatchMu.Unlock()
	ok := c.dispatch(p)
	if c.srv.quiesced.Load() {
		c.flushAcks()
	}
	return ok
}

// maxAckBatch bounds the operations of one batch of acknowledgements.
const maxAckBatch = 1024

// packetBuffered reports whether a whole packet is already buffered in
// br, so that reading it does not wait for the network.
func packetBuffered(br *bufio.Reader) bool {
	n := br.Buffered()
	if n < 2 {
		return false
	}
	hdr, _ := br.Peek(min(n, 5))
	size, mult := 0, 1
	for i := 1; i < len(hdr); i++ {
		size += int(hdr[i]&0x7f) * mult
		if hdr[i]&0x80 == 0 {
			return n >= i+1+size
		}
		mult <<= 7
	}
	return false
}

// flushAcks submits the Dequeues gathered from acknowledgements. The read
// loop gathers the acknowledgements of a burst (those already buffered)
// into one NoSync batch instead of one commit each, and submits it before
// it waits for the network, before any other packet and when it ends, so
// the Dequeues still reach the store in the order of the connection's
// packets.
func (c *conn) flushAcks() {
	if b := c.acks; b != nil {
		c.acks = nil
		if b.Len() == 0 {
			c.ackSpare = b
			return
		}
		c.submitAsync(b)
		c.sess.AcksSubmitted()
	}
}

// ackBatch returns the batch acknowledgements add their Dequeues to.
func (c *conn) ackBatch() *store.Batch {
	if c.acks == nil {
		c.acks, c.ackSpare = c.ackSpare, nil
	}
	if c.acks == nil {
		c.acks = &store.Batch{NoSync: true}
	}
	return c.acks
}

func (c *conn) readError(err error) {
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
	case errors.As(err, &ne) && ne.Timeout():
		c.log.Debug("keep alive timeout", "client", c.clientID)
		if c.keepAliveCapped {
			c.srv.refused.add(c.log, LimitKeepAlive, "client", c.clientID, "keepAlive", c.keepAlive)
		}
		c.srv.connErrs.add(c.log, c.srv.now(), connErrSilent, err,
			"client", c.clientID, "keepAlive", c.keepAlive.String(), "remote", c.nc.RemoteAddr().String())
		c.kick(packet.KeepAliveTimeout)
	default:
		var pe *packet.Error
		if errors.As(err, &pe) {
			c.countLimit(err)
			c.violation(pe.Code, err)
		}
	}
}

// violation ends the connection for a packet that breaks the protocol:
// counted and logged as a connection error (limited), then DISCONNECT with
// code where the version has one.
func (c *conn) violation(code packet.ReasonCode, err error) {
	c.srv.connErrs.add(c.log, c.srv.now(), connErrProto, err,
		"client", c.clientID, "remote", c.nc.RemoteAddr().String())
	c.kick(code)
}

// countLimit counts a decode error that a configured limit caused,
// logging it when the connection is past CONNECT (a refused CONNECT logs
// one line, which names the limit: see refusal).
func (c *conn) countLimit(err error) {
	if !errors.Is(err, packet.ErrUserPropertyLimit) {
		return
	}
	if c.connected.Load() {
		c.srv.refused.add(c.log, LimitUserProperties, "client", c.clientID, "remote", c.nc.RemoteAddr().String())
		return
	}
	c.refusal(LimitUserProperties)
}

// refusal counts a CONNECT that limit refuses, without a line of its
// own: sendRefusal's names the limit.
func (c *conn) refusal(limit string) {
	c.srv.refused.count(limit)
	c.refusedBy = limit
}

// dispatch handles one packet; false ends the connection.
func (c *conn) dispatch(p packet.Packet) bool {
	c.panicHook("dispatch")
	switch p.(type) {
	case *packet.Puback, *packet.Pubcomp:
	default:
		c.flushAcks()
	}
	switch p := p.(type) {
	case *packet.Publish:
		return c.onPublish(p)
	case *packet.Puback:
		c.onPuback(p)
	case *packet.Pubrec:
		c.onPubrec(p)
	case *packet.Pubrel:
		c.onPubrel(p)
	case *packet.Pubcomp:
		c.onPubcomp(p)
	case *packet.Subscribe:
		return c.onSubscribe(p)
	case *packet.Unsubscribe:
		return c.onUnsubscribe(p)
	case *packet.Pingreq:
		c.queueControl(&packet.Pingresp{})
	case *packet.Disconnect:
		c.onDisconnect(p)
		return false
	default: // a second CONNECT [MQTT-3.1.0-2], AUTH, or a server-only packet
		c.violation(packet.ProtocolError, fmt.Errorf("unexpected %s packet", p.Type()))
		return false
	}
	return true
}

// onDisconnect handles the client's DISCONNECT.
// Only Normal disconnection (0x00, the only code of 3.1.1) deletes the
// will [MQTT-3.14.4-3]; any other Reason Code keeps it (section 3.1.2.5).
func (c *conn) onDisconnect(p *packet.Disconnect) {
	exp := p.Properties.SessionExpiryInterval
	if c.version >= packet.V5 && exp != nil && c.connectExpiry == 0 && *exp != 0 {
		c.violation(packet.ProtocolError, errors.New("DISCONNECT sets a session expiry interval where CONNECT set none")) // [MQTT-3.14.2-2]; the will stays
		return
	}
	c.endMu.Lock()
	defer c.endMu.Unlock()
	c.keepWill = p.ReasonCode != packet.NormalDisconnection
	if c.version >= packet.V5 && exp != nil {
		v := min(*exp, c.srv.sessionExpiryCap(c.sess))
		c.newExpiry = &v
	}
}

// kick ends the connection from the server side, telling 5.0 clients why.
func (c *conn) kick(rc packet.ReasonCode) {
	c.kickWith(&packet.Disconnect{ReasonCode: rc})
}

// kickWith is kick with a DISCONNECT of the caller's, properties included.
func (c *conn) kickWith(d *packet.Disconnect) {
	rc := d.ReasonCode
	if !c.connected.Load() {
		c.closeNow() // no writer yet: unblock the CONNECT read
		return
	}
	if c.version >= packet.V5 {
		if !rc.ValidFor(packet.DISCONNECT, packet.V5) {
			// CONNECT-only codes (a bad second CONNECT): the packet itself
			// is the violation [MQTT-3.1.0-2].
			d = &packet.Disconnect{ReasonCode: packet.ProtocolError}
		}
		dd := *d // one copy per connection's writer
		c.queueControl(&dd)
	}
	c.close()
}

// close asks the writer to flush and close the connection. The socket is
// closed after closeGrace in any case: a client that stopped reading must
// not hold a takeover or a drain for the write timeout.
func (c *conn) close() {
	c.closer.Do(func() {
		close(c.closing)
		nc := c.nc
		c.graceMu.Lock()
		if !c.ended {
			c.grace = time.AfterFunc(closeGrace, func() { _ = nc.Close() })
		}
		c.graceMu.Unlock()
	})
}

// stopGrace marks the connection ended, its socket closed, and stops the
// grace timer of close.
func (c *conn) stopGrace() {
	c.graceMu.Lock()
	defer c.graceMu.Unlock()
	c.ended = true
	if c.grace != nil {
		c.grace.Stop()
		c.grace = nil
	}
}

// closeNow closes the socket at once, without waiting for it: closing a
// WebSocket runs its close handshake, which waits seconds for a peer that
// does not answer, and closeNow runs on the committer goroutine
// (queueControl from an acknowledgement) and with Server.mu held
// (waitConns). The close runs on a goroutine of its own, once.
func (c *conn) closeNow() {
	c.close()
	c.sockCloser.Do(func() { go c.nc.Close() })
}

// takeover ends the connection because a new one claims its session.
func (c *conn) takeover() { c.kick(packet.SessionTakenOver) }

// end runs when the read loop is over: it lets submitted commits finish,
// stops the writer and detaches the session.
func (c *conn) end() {
	waited := make(chan struct{})
	go func() { c.pendWG.Wait(); close(waited) }()
	t := time.NewTimer(pendingWait)
	select {
	case <-waited:
	case <-t.C:
		c.log.Warn("connection closed with commits still pending", "client", c.clientID)
	}
	t.Stop()
	c.close()
	<-c.wdone
	c.srv.detach(c)
}
