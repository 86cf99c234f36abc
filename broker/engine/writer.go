package engine

import (
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
	var err error
	c.out, err = packet.Append(c.out, p, c.version)
	over := c.outMax > 0 && len(c.out) > c.outMax
	c.outMu.Unlock()
	if err != nil {
		c.log.Error("encoding packet", "client", c.clientID, "type", p.Type(), "err", err)
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
	c.wakeWriter()
}

// wakeWriter signals the writer without blocking.
func (c *conn) wakeWriter() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// writeLoop is the connection's single writer: it sends control packets
// and pulls the session's deliveries while the inflight window allows.
func (c *conn) writeLoop() {
	defer close(c.wdone)
	defer c.nc.Close()
	defer func() { c.recovered("writer", recover()) }()
	w := writer{c: c}
	for {
		select {
		case <-c.wake:
			if !w.flush() {
				c.close()
				return
			}
		case <-c.closing:
			w.final()
			return
		}
	}
}

// writer holds the writer goroutine's buffers.
type writer struct {
	c    *conn
	buf  []byte
	outs []session.Outgoing
}

// flush writes until neither control packets nor deliveries are left.
func (w *writer) flush() bool {
	c := w.c
	c.panicHook("writer")
	for {
		w.buf = c.takeControl(w.buf[:0])
		if !w.deliver() {
			return false
		}
		if len(w.buf) == 0 {
			return true
		}
		if !w.write() {
			return false
		}
	}
}

// deliver appends the next deliveries to w.buf, once their delivery state
// is stored; none once the server quiesced (Quiesce). False: the state
// could not be stored.
func (w *writer) deliver() bool {
	c := w.c
	c.deliverMu.Lock()
	defer c.deliverMu.Unlock()
	if c.srv.quiesced.Load() {
		return true
	}
	var fits func(*session.Outgoing) bool
	if c.sendMax > 0 {
		fits = c.fits
	}
	b := &store.Batch{NoSync: true}
	var wait bool
	w.outs, wait = c.sess.NextBatch(w.outs[:0], deliveriesPerWrite, fits, b)
	if !w.commit(b, wait) {
		return false
	}
	for i := range w.outs {
		w.buf = c.encode(w.buf, &w.outs[i])
		w.outs[i] = session.Outgoing{}
	}
	return true
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
		w.c.log.Error("storing delivery state", "client", w.c.clientID, "err", err)
		return false
	}
	return true
}

func (w *writer) write() bool {
	c := w.c
	_ = c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	n, err := c.nc.Write(w.buf)
	c.srv.stats.bytesOut.Add(uint64(n))
	if err != nil {
		c.log.Debug("write failed", "client", c.clientID, "err", err)
		return false
	}
	return true
}

// final writes the remaining control packets (a DISCONNECT) with a short
// deadline before the connection closes.
func (w *writer) final() {
	c := w.c
	w.buf = c.takeControl(w.buf[:0])
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

// publishPacket builds the PUBLISH for a delivery, without topic alias.
func (c *conn) publishPacket(o *session.Outgoing, now time.Time) *packet.Publish {
	m := o.Msg
	p := &packet.Publish{Dup: o.Dup, QoS: o.QoS, Retain: o.Retain, Topic: m.Topic,
		PacketID: o.PacketID, Payload: m.Payload}
	if c.version < packet.V5 {
		return p
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
	return p
}

// fits reports whether a delivery fits the client's Maximum Packet Size.
func (c *conn) fits(o *session.Outgoing) bool {
	n, err := packet.Size(c.publishPacket(o, c.srv.now()), c.version)
	return err == nil && uint32(n) <= c.sendMax
}

// encode appends the packet of one delivery to dst.
func (c *conn) encode(dst []byte, o *session.Outgoing) []byte {
	var p packet.Packet
	if o.Pubrel {
		p = &packet.Pubrel{PacketID: o.PacketID}
	} else {
		pub := c.publishPacket(o, c.srv.now())
		c.alias(pub)
		c.srv.stats.msgsOut[o.QoS].Add(1)
		p = pub
	}
	out, err := packet.Append(dst, p, c.version)
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
