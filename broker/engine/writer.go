package engine

import (
	"context"
	"sync"
	"time"

	"github.com/bollard-io/bollard/broker/packet"
	"github.com/bollard-io/bollard/broker/session"
	"github.com/bollard-io/bollard/broker/store"
)

// deliveriesPerWrite bounds the session messages encoded into one write.
const deliveriesPerWrite = 64

// queueControl encodes a control packet (an acknowledgement, CONNACK,
// SUBACK, DISCONNECT, ...) into the outbound buffer and wakes the writer.
// Control packets cannot be dropped: a client that lets more than
// limits.outboundBufferBytes of them pile up is disconnected as a slow
// consumer.
func (c *conn) queueControl(p packet.Packet) {
	c.outMu.Lock()
	over, err := c.appendControl(p)
	c.outMu.Unlock()
	c.queued(p.Type(), over, err)
}

// queueAck queues the acknowledgement of a QoS 1 or 2 PUBLISH (PUBACK or
// PUBREC) as queueControl would, built in the connection's own packet:
// one per message allocated nothing.
func (c *conn) queueAck(p pubAck, rc packet.ReasonCode) {
	t := packet.PUBACK
	c.outMu.Lock()
	var over bool
	var err error
	if p.qos == 1 {
		c.ackOut.puback = packet.Puback{PacketID: p.id, ReasonCode: rc}
		over, err = c.appendControl(&c.ackOut.puback)
	} else {
		t = packet.PUBREC
		c.ackOut.pubrec = packet.Pubrec{PacketID: p.id, ReasonCode: rc}
		over, err = c.appendControl(&c.ackOut.pubrec)
	}
	c.outMu.Unlock()
	c.queued(t, over, err)
}

// appendControl encodes p into the outbound buffer, with outMu held, and
// reports whether the buffer went over its bound.
func (c *conn) appendControl(p packet.Packet) (over bool, err error) {
	c.out, err = packet.Append(c.out, p, c.version)
	return c.outMax > 0 && len(c.out) > c.outMax, err
}

// queued ends queueControl, outMu released: it disconnects a client whose
// control packets went over the outbound buffer, or wakes the writer.
func (c *conn) queued(t packet.Type, over bool, err error) {
	if err != nil {
		c.log.Error("encoding packet", "client", c.clientID, "type", t, "err", err)
	}
	if over {
		select {
		case <-c.closing: // already closing: said once
		default:
			c.log.Warn("slow consumer: outbound buffer full, disconnecting", "client", c.clientID)
		}
		c.closeNow()
		return
	}
	c.notify()
}

// wakeWriter signals the writer goroutine without blocking.
func (c *conn) wakeWriter() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Who writes. The writer goroutine may always write; it is woken through
// c.wake. Handing every packet to it costs a goroutine wake-up (often a
// thread's) on the path of each message, which at one message in flight
// is most of a round trip. So the goroutine that made something sendable
// writes it itself when it can do so without waiting (flushInline: the
// write lock is free and the socket takes the bytes at once), and wakes
// the writer goroutine only for what is left:
//   - a connection's read loop defers the wake-ups of its own connection
//     while it handles a PUBLISH that is the first packet since it last
//     waited (deferWakes) and, if nothing followed it, writes them itself
//     before it waits for the network again (endDefer): the publisher's
//     PUBACK; from a second packet on, the writer goroutine writes;
//   - the fan-out of a publish that arrived alone (nothing else buffered
//     behind it: a publisher with one message in flight, where the
//     hand-off would be most of the latency) collects the connections
//     whose sessions it made deliverable (Server.wakes, the publisher's
//     wakeList), and route writes to the subscriber right after the
//     fan-out, before the publisher's acknowledgement, when it is the
//     only one (several are written in parallel by their writers). After a burst of publishes the
//     subscribers' writer goroutines are woken instead: they write in
//     parallel with the read loop, each gathering the deliveries of every
//     publisher into fewer writes, which is what throughput needs once
//     several messages are in flight.
// notify is the one wake-up call: the session's notify func (Attach) and
// queueControl. It runs with Session.mu held, anywhere (the committer
// too), and never blocks.

// Deferral states of conn.wakeState.
const (
	deferring   = 1 << iota // the read loop flushes before it reads again
	wakeWanted              // something was made sendable meanwhile
	noDeferring = 0
)

// notify says that c has something to send.
func (c *conn) notify() {
	if wl := c.srv.wakes.Load(); wl != nil && wl.add(c) {
		return
	}
	if wl := c.srv.inlineWakes.Load(); wl != nil && wl != &c.wakes && wl.add(c) {
		return
	}
	for {
		st := c.wakeState.Load()
		if st&deferring == 0 {
			c.wakeWriter()
			return
		}
		if st&wakeWanted != 0 || c.wakeState.CompareAndSwap(st, st|wakeWanted) {
			return
		}
	}
}

// deferWakes makes notify leave c's writes to the read loop, which calls
// endDefer before it waits for the network. Only the read loop calls it,
// before it dispatches each packet. Only a PUBLISH that is the first
// packet since the read loop last waited is deferred (its PUBACK is what
// the publisher waits for): from a second packet on, the writer goroutine
// writes (what was deferred, and what follows) in parallel with the
// reading of the burst, so acknowledgements do not wait for its end; and
// the deliveries that a subscriber's PUBACK lets out (a backlog, read
// from the store) are the writer's too, so that they are fetched and
// written while the read loop reads the next acknowledgements.
func (c *conn) deferWakes(p packet.Packet) {
	c.burst++
	if _, pub := p.(*packet.Publish); c.burst > 1 || !pub {
		if c.wakeState.Swap(noDeferring)&wakeWanted != 0 {
			c.wakeWriter()
		}
		return
	}
	if c.raw != nil {
		c.wakeState.CompareAndSwap(noDeferring, deferring)
	}
}

// endDefer ends deferWakes and writes what was made sendable meanwhile.
// Only the read loop calls it.
func (c *conn) endDefer() {
	c.burst = 0
	if c.wakeState.Swap(noDeferring)&wakeWanted != 0 {
		c.flushInline()
	}
}

// flushDeferred writes what the read loop's deferral (deferWakes) held
// back so far and goes on deferring what follows until endDefer: route
// writes the acknowledgement of a publish that came alone before its
// deliveries. Only the read loop calls it.
func (c *conn) flushDeferred() {
	if c.wakeState.CompareAndSwap(deferring|wakeWanted, deferring) {
		c.flushInline()
	}
}

// alone reports whether the packet being dispatched came alone: the
// first since the read loop last waited for the network, with nothing
// buffered behind it. Only the read loop calls it.
func (c *conn) alone() bool {
	return c.burst <= 1 && !packetBuffered(c.r.R)
}

// flushInline writes what c has to send from the calling goroutine
// without waiting: not for the write lock, not for the socket, not for a
// commit; what it cannot write is left to the writer goroutine, which it
// wakes. It never runs on the committer goroutine (it may submit).
func (c *conn) flushInline() {
	select {
	case <-c.closing:
		c.wakeWriter() // the writer's final flush
		return
	default:
	}
	if c.raw == nil || !c.wmu.TryLock() {
		c.wakeWriter() // the holder may have looked already: the writer looks again
		return
	}
	if !c.flushNoWaitLocked() {
		c.wakeWriter()
	}
}

func (c *conn) flushNoWaitLocked() bool {
	defer c.wmu.Unlock()
	return c.w.flushNoWait()
}

// wakeList collects the connections a fan-out made deliverable (see
// notify) for the publishing goroutine to flush. add after take has
// closed the list fails: the caller wakes the writer itself.
type wakeList struct {
	mu     sync.Mutex
	closed bool
	conns  []*conn
}

func (wl *wakeList) open() {
	wl.mu.Lock()
	wl.closed = false
	wl.mu.Unlock()
}

// add lists c for the owner's flush; true when c is listed (here or in
// another publisher's list, whose flush comes after this call: it clears
// the mark before it flushes).
func (wl *wakeList) add(c *conn) bool {
	wl.mu.Lock()
	defer wl.mu.Unlock()
	if wl.closed || len(wl.conns) >= maxListedWakes {
		return false
	}
	if !c.listed.Swap(true) {
		wl.conns = append(wl.conns, c)
	}
	return true
}

// flush closes the list and flushes its connection inline when it holds
// one; several are handed to their writer goroutines, which write in
// parallel (measured: a publisher writing to four subscribers itself
// delivered less and later than their four writers).
func (wl *wakeList) flush() {
	wl.mu.Lock()
	wl.closed = true
	conns := wl.conns
	if len(conns) == 0 {
		wl.mu.Unlock()
		return
	}
	wl.conns = nil
	wl.mu.Unlock()
	for i, c := range conns {
		c.listed.Store(false)
		if len(conns) == 1 {
			c.flushInline()
		} else {
			c.wakeWriter()
		}
		conns[i] = nil
	}
	wl.mu.Lock()
	if wl.conns == nil && cap(conns) <= maxPooledWakes {
		wl.conns = conns[:0]
	}
	wl.mu.Unlock()
}

// maxListedWakes bounds the connections a wakeList takes; the writer
// goroutines of the others are woken at once.
const maxListedWakes = 16

// maxPooledWakes bounds the array a publisher's wakeList keeps between
// publishes.
const maxPooledWakes = 64

// writeLoop is the connection's writer goroutine: it sends control packets
// and pulls the session's deliveries while the inflight window allows,
// whenever it is woken, and what an inline flush left.
func (c *conn) writeLoop() {
	defer close(c.wdone)
	defer c.nc.Close()
	defer func() { c.recovered("writer", recover()) }()
	for {
		select {
		case <-c.wake:
			if !c.writerFlush() {
				c.close()
				return
			}
		case <-c.closing:
			c.wmu.Lock()
			defer c.wmu.Unlock()
			c.w.final()
			return
		}
	}
}

func (c *conn) writerFlush() bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.w.flush()
}

// writer holds the buffers of whoever writes (conn.wmu).
type writer struct {
	c    *conn
	buf  []byte
	outs []session.Outgoing
	// Left by flushNoWait for the writer goroutine: bytes the socket did
	// not take, then (staged non-nil) deliveries in outs whose state in
	// staged must be durable before they are written (QoS 2).
	pend   []byte
	staged *store.Batch
	// spare is an empty batch kept for the next round: most rounds store
	// nothing (clean sessions), and a batch per round was an allocation
	// per message.
	spare *store.Batch
	rw    rawWrite // flushNoWait's raw write
	// pub is the PUBLISH each delivery is encoded from, filled anew each
	// time (a struct per delivery was a third of the garbage per message).
	pub packet.Publish
}

// batch returns an empty NoSync batch for a round's delivery state.
func (w *writer) batch() *store.Batch {
	if b := w.spare; b != nil {
		w.spare = nil
		return b
	}
	return &store.Batch{NoSync: true}
}

// flush writes until neither control packets nor deliveries are left.
// Only the writer goroutine calls it.
func (w *writer) flush() bool {
	c := w.c
	c.panicHook("writer")
	if !w.finishInline() {
		return false
	}
	for {
		w.buf = c.takeControl(w.buf[:0])
		if !w.deliver() {
			return false
		}
		if len(w.buf) == 0 {
			return true
		}
		if !w.write(w.buf) {
			return false
		}
	}
}

// deliver appends the next deliveries to w.buf, once their delivery state
// is stored; none once the server quiesced (Quiesce). False: the state
// could not be stored. Only the writer goroutine calls it.
func (w *writer) deliver() bool {
	if w.c.srv.quiesced.Load() {
		return true
	}
	b := w.batch()
	var wait bool
	w.outs, wait = w.c.sess.NextBatch(w.outs[:0], deliveriesPerWrite, w.c.fitsFunc(), b)
	if b.Len() == 0 {
		w.spare = b // nothing to commit: kept for the next round
	} else if !w.commit(b, wait) {
		return false
	}
	w.encodeOuts()
	return true
}

// waitStaged returns once c holds no delivery staged by an inline write
// (writer.staged): the writer goroutine commits it, holding wmu until the
// commit ended. Quiesce calls it after setting the flag, so no new one is
// staged. It only TryLocks wmu (see locksordering.txt) and looks again
// while another holds it.
func (c *conn) waitStaged(ctx context.Context) error {
	for {
		if c.wmu.TryLock() {
			staged := c.w.staged != nil
			c.wmu.Unlock()
			if !staged {
				return nil
			}
			c.wakeWriter()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.wdone:
			return nil // the writer ended: the connection is closing
		case <-time.After(time.Millisecond):
		}
	}
}

// finishInline writes what flushNoWait left.
func (w *writer) finishInline() bool {
	if len(w.pend) > 0 {
		ok := w.write(w.pend)
		w.pend = w.pend[:0]
		if !ok {
			return false
		}
	}
	if b := w.staged; b != nil {
		w.staged = nil
		if !w.commit(b, true) {
			return false
		}
		w.buf = w.buf[:0]
		w.encodeOuts()
		if len(w.buf) > 0 && !w.write(w.buf) {
			return false
		}
	}
	return true
}

// flushNoWait is one round of flush that never waits: false when the
// writer goroutine must go on (bytes the socket did not take, deliveries
// that wait for a commit, or a full round that may have more behind it).
func (w *writer) flushNoWait() bool {
	if len(w.pend) > 0 || w.staged != nil {
		return false
	}
	c := w.c
	w.buf = c.takeControl(w.buf[:0])
	b := w.batch()
	var wait bool
	if !c.srv.quiesced.Load() { // Quiesce: acknowledgements only
		w.outs, wait = c.sess.NextBatch(w.outs[:0], deliveriesPerWrite, c.fitsFunc(), b)
	}
	if wait {
		w.pend = append(w.pend, w.buf...)
		w.staged = b
		return false
	}
	if b.Len() == 0 {
		w.spare = b // nothing to commit: kept for the next round
	} else {
		w.commit(b, false) // submits only: cannot fail
	}
	full := len(w.outs) == deliveriesPerWrite
	w.encodeOuts()
	if len(w.buf) == 0 {
		return true
	}
	n := writeNoWait(c.raw, &w.rw, w.buf)
	c.srv.stats.bytesOut.Add(uint64(n))
	if n < len(w.buf) {
		w.pend = append(w.pend, w.buf[n:]...)
		return false
	}
	return !full
}

// encodeOuts appends the packets of w.outs to w.buf and forgets them.
func (w *writer) encodeOuts() {
	for i := range w.outs {
		w.buf = w.c.encode(w.buf, &w.outs[i], &w.pub)
		w.outs[i] = session.Outgoing{}
	}
	w.outs = w.outs[:0]
}

// fitsFunc is the Maximum Packet Size check for NextBatch (nil: none).
func (c *conn) fitsFunc() func(*session.Outgoing) bool {
	if c.sendMax > 0 {
		return c.fits
	}
	return nil
}

// commit stores the delivery state changes of a batch; QoS 2 sends wait
// for them to be durable.
func (w *writer) commit(b *store.Batch, wait bool) bool {
	if b.Len() == 0 {
		return true
	}
	if !wait {
		w.c.submitAsync(b)
		return true
	}
	b.NoSync = false
	if err := w.c.srv.com.commit(b); err != nil {
		w.c.srv.storeErrs.add(w.c.log, w.c.srv.now(), "storing delivery state", err, "client", w.c.clientID)
		return false
	}
	return true
}

// write writes b, waiting at most writeTimeout. The deadline is cleared
// afterwards, so that it never refuses an inline write (flushNoWait).
func (w *writer) write(b []byte) bool {
	c := w.c
	_ = c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	n, err := c.nc.Write(b)
	c.srv.stats.bytesOut.Add(uint64(n))
	if err != nil {
		c.log.Debug("write failed", "client", c.clientID, "err", err)
		return false
	}
	_ = c.nc.SetWriteDeadline(time.Time{})
	return true
}

// final writes the remaining control packets (a DISCONNECT) with a short
// deadline before the connection closes.
func (w *writer) final() {
	c := w.c
	w.buf = c.takeControl(append(w.buf[:0], w.pend...))
	w.pend = w.pend[:0]
	if len(w.buf) == 0 {
		return
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	n, _ := c.nc.Write(w.buf)
	c.srv.stats.bytesOut.Add(uint64(n))
}

// takeControl appends the queued control packets to dst and empties the
// queue.
func (c *conn) takeControl(dst []byte) []byte {
	c.outMu.Lock()
	dst = append(dst, c.out...)
	c.out = c.out[:0]
	c.outMu.Unlock()
	return dst
}

// publishPacket fills p with the PUBLISH for a delivery, without topic
// alias.
func (c *conn) publishPacket(p *packet.Publish, o *session.Outgoing, now time.Time) {
	m := o.Msg
	*p = packet.Publish{Dup: o.Dup, QoS: o.QoS, Retain: o.Retain, Topic: m.Topic,
		PacketID: o.PacketID, Payload: m.Payload}
	if c.version < packet.V5 {
		return
	}
	pr := &p.Properties
	pr.PayloadFormatIndicator = m.Props.PayloadFormat
	pr.CorrelationData = m.Props.CorrelationData
	if m.Props.ContentType != "" {
		pr.ContentType = &m.Props.ContentType
	}
	if m.Props.ResponseTopic != "" {
		pr.ResponseTopic = &m.Props.ResponseTopic
	}
	for _, u := range m.Props.UserProperties {
		pr.User = append(pr.User, packet.UserProperty{Key: u.Key, Value: u.Value})
	}
	pr.SubscriptionIdentifiers = o.SubscriptionIDs
	if !m.ExpiresAt.IsZero() {
		// Rounded up; 0 for an inflight message resent after its expiry.
		left := uint32(max(0, (m.ExpiresAt.Sub(now)+time.Second-1)/time.Second))
		pr.MessageExpiryInterval = &left
	}
}

// fits reports whether a delivery fits the client's Maximum Packet Size.
func (c *conn) fits(o *session.Outgoing) bool {
	var p packet.Publish
	c.publishPacket(&p, o, c.srv.now())
	n, err := packet.Size(&p, c.version)
	return err == nil && uint32(n) <= c.sendMax
}

// encode appends the packet of one delivery to dst; a PUBLISH is built
// in pub.
func (c *conn) encode(dst []byte, o *session.Outgoing, pub *packet.Publish) []byte {
	var p packet.Packet
	if o.Pubrel {
		p = &packet.Pubrel{PacketID: o.PacketID}
	} else {
		c.publishPacket(pub, o, c.srv.now())
		c.alias(pub)
		c.srv.stats.msgsOut[o.QoS].Add(1)
		p = pub
	}
	out, err := packet.Append(dst, p, c.version)
	*pub = packet.Publish{} // keeps no message alive
	if err != nil {
		c.log.Error("encoding packet", "client", c.clientID, "type", p.Type(), "err", err)
		return dst
	}
	return out
}

// alias applies an outbound topic alias: a topic seen before is sent as
// its alias alone; new topics get an alias while the client's Topic Alias
// Maximum allows.
func (c *conn) alias(p *packet.Publish) {
	if c.aliasMax == 0 {
		return
	}
	if a, ok := c.outAliases[p.Topic]; ok {
		p.Properties.TopicAlias = &a
		p.Topic = ""
		return
	}
	if len(c.outAliases) >= int(c.aliasMax) {
		return
	}
	a := uint16(len(c.outAliases) + 1)
	p.Properties.TopicAlias = &a
	if c.sendMax > 0 {
		// The alias property adds 3 bytes to a PUBLISH sized without it.
		if n, err := packet.Size(p, c.version); err != nil || uint32(n) > c.sendMax {
			p.Properties.TopicAlias = nil
			return
		}
	}
	if c.outAliases == nil {
		c.outAliases = make(map[string]uint16)
	}
	c.outAliases[p.Topic] = a
}
