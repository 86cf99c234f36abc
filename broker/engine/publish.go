package engine

import (
	"sync"
	"time"

	"github.com/bollard-io/bollard/broker/packet"
	"github.com/bollard-io/bollard/broker/router"
	"github.com/bollard-io/bollard/broker/store"
	"github.com/bollard-io/bollard/broker/topic"
)

// route fans m out and submits the batch b (which may already hold
// operations, such as the inbound QoS 2 state) to the committer, with the
// Seqs assigned and the batch submitted under seqMu. When c is set, p is
// acknowledged on c (c.published) once the batch committed, in submission
// order; the caller counted it in c.pending and c.pendWG. With nothing to
// write and order false, that happens at once.
// route takes b over: once the publish is settled, b goes back to
// batchPool, so the caller must not use it after route.
func (s *Server) route(m *store.Message, b *store.Batch, order bool, c *conn, p *packet.Publish) {
	full := s.storeFull(m)
	s.seqMu.Lock()
	f := s.router.Route(m, full, b)
	if f.Rejected && c != nil {
		c.endRejected(p, b)
	}
	if b.Len() == 0 && !order {
		s.seqMu.Unlock()
		r := routed{srv: s, m: m, c: c, p: p}
		r.finish(f, b, nil)
		return
	}
	s.com.submit(&job{b: b, extra: m.Size(), fan: f, pub: routed{srv: s, m: m, c: c, p: p}})
	s.seqMu.Unlock()
}

// routed is the publish a job routed: what the job does when it finishes
// is spelled out in fields rather than a closure, so that a publish
// allocates no callbacks.
type routed struct {
	srv *Server // nil: the job is not a routed publish
	m   *store.Message
	c   *conn // acknowledges p; nil: nothing to acknowledge
	p   *packet.Publish
}

// finish settles the fan-out f of the publish, acknowledges it, and
// recycles its batch b and f.
func (r *routed) finish(f *router.Fanout, b *store.Batch, err error) {
	f.Settle(err == nil)
	if err != nil {
		r.srv.log.Error("storing a published message", "topic", r.m.Topic, "err", err)
	}
	if c := r.c; c != nil {
		c.published(r.p, f.Rejected, err)
		c.pending.Add(-1)
		c.pendWG.Done()
	}
	putBatch(b)
	f.Release()
}

// batchPool recycles the batches of routed publishes. A publish fanned
// out to N offline sessions holds N+1 operations (about 100 bytes each),
// and allocating that array for every publish was a large share of the
// broker's garbage at high publish rates. A job's batch is done with once
// the job finished: the store does not keep a batch's operations after
// Commit (memstore copies what it keeps, pebblestore encodes it).
var batchPool = sync.Pool{New: func() any { return new(store.Batch) }}

// maxPooledOps bounds the batches kept for reuse: a rare huge fan-out's
// array is left to the GC.
const maxPooledOps = 4096

func getBatch() *store.Batch { return batchPool.Get().(*store.Batch) }

func putBatch(b *store.Batch) {
	if cap(b.Ops) > maxPooledOps {
		return
	}
	clear(b.Ops) // drop the references to messages, entries and sessions
	b.Reset()
	batchPool.Put(b)
}

// publishWill publishes a session's will message.
func (s *Server) publishWill(clientID string, w *store.Will) {
	m := w.Message
	now := s.now()
	if !m.ExpiresAt.IsZero() {
		m.ExpiresAt = now.Add(m.ExpiresAt.Sub(m.PublishedAt))
	}
	m.ID, m.Publisher, m.PublishedAt = s.store.NextMessageID(), clientID, now
	if m.Retain && !s.retainAdmitted(&m, s.log, clientID) {
		m.Retain = false // delivered, not retained
	}
	s.log.Debug("publishing will", "client", clientID, "topic", m.Topic)
	s.route(&m, getBatch(), false, nil, nil)
}

// onPublish handles a PUBLISH from the client.
func (c *conn) onPublish(p *packet.Publish) bool {
	name, rc, limited := c.topicOf(p)
	if limited && c.version >= packet.V5 && p.QoS > 0 {
		// Well-formed but not accepted: the 5.0 publisher learns it from
		// the acknowledgement and keeps its connection.
		if !c.takeSlot() {
			return false
		}
		c.inOrder(nil, func(error) { c.ackPublish(p, packet.TopicNameInvalid) })
		return true
	}
	if rc != packet.Success {
		c.kick(rc)
		return false
	}
	if p.QoS == 2 && c.sess.InboundFull(p.PacketID, int(c.srv.config().Limits.MaxInflight)) {
		// A QoS 2 exchange holds its place until PUBCOMP, so the Receive
		// Maximum counts it until then [MQTT-3.3.4-9]; 3.1.1 has no such
		// rule, but the broker bounds the state a client makes it hold.
		c.srv.refused.add(c.log, LimitInboundQoS2, "client", c.clientID)
		c.kick(packet.ReceiveMaximumExceeded)
		return false
	}
	if p.QoS > 0 && !c.takeSlot() {
		return false
	}
	c.srv.stats.msgsIn[p.QoS].Add(1)
	if !c.srv.canPublish(c.principal, c.clientID, name) {
		c.srv.stats.drop(c.log, c.clientID, DropNotAuthorized, 1)
		c.inOrder(nil, func(error) { c.ackPublish(p, packet.NotAuthorized) })
		return true
	}
	m := c.message(p, name)
	if m.Retain && !c.srv.retainAdmitted(m, c.log, c.clientID) {
		if c.version >= packet.V5 && p.QoS > 0 {
			// Refused whole: the 5.0 publisher learns it and may retry.
			c.inOrder(nil, func(error) { c.ackPublish(p, packet.QuotaExceeded) })
			return true
		}
		m.Retain = false // a publisher that cannot learn it: delivered, not retained
	}
	b := getBatch()
	if p.QoS == 2 && c.sess.BeginInbound(p.PacketID, b) {
		// A resent PUBLISH: PUBREC again, not routed again.
		c.inOrder(nil, func(error) { c.ackPublish(p, packet.Success) })
		return true
	}
	if p.QoS == 0 {
		c.srv.route(m, b, false, nil, nil)
		c.srv.com.throttle()
		return true
	}
	order := c.pending.Load() > 0
	c.pending.Add(1)
	c.pendWG.Add(1)
	c.srv.route(m, b, order, c, p)
	c.srv.com.throttle()
	return true
}

// published acknowledges a routed QoS 1/2 publish; rejected: some
// subscriber's queue refused it (Fanout.Rejected).
func (c *conn) published(p *packet.Publish, rejected bool, err error) {
	switch {
	case err != nil:
		if p.QoS == 2 {
			c.sess.AbortInbound(p.PacketID)
		}
		if c.version >= packet.V5 {
			c.ackPublish(p, packet.UnspecifiedError)
			return
		}
		c.releaseSlot()
		c.close() // 3.1.1 has no error ack: the client resends after reconnecting
	case rejected && c.version >= packet.V5:
		c.ackPublish(p, packet.QuotaExceeded)
	default:
		c.ackPublish(p, packet.Success)
	}
}

// ackPublish sends PUBACK or PUBREC. It runs on the committer goroutine
// too, so it must not block or submit: a 5.0 error code ends a QoS 2
// exchange, and the inbound state of the exchanges that began is forgotten
// before (endRejected, AbortInbound).
func (c *conn) ackPublish(p *packet.Publish, rc packet.ReasonCode) {
	if p.QoS == 0 {
		return
	}
	if c.version < packet.V5 && rc.IsError() {
		rc = packet.Success
	}
	c.releaseSlot()
	if p.QoS == 1 {
		c.queueControl(&packet.Puback{PacketID: p.PacketID, ReasonCode: rc})
		return
	}
	c.queueControl(&packet.Pubrec{PacketID: p.PacketID, ReasonCode: rc})
}

// endRejected ends the QoS 2 exchange of a 5.0 publish that a queue
// refused (PUBREC 0x97 ends it, section 4.3.3): its inbound state is
// forgotten in the batch that stores it, so the same packet identifier
// starts a new exchange. It runs in route, under seqMu and before the
// batch is submitted: the acknowledgement runs on the committer
// goroutine, which must not submit (a second batch from there waited on
// the committer's own full queue: a deadlock of every commit). A failed
// commit stored nothing, and published forgets the state (AbortInbound).
func (c *conn) endRejected(p *packet.Publish, b *store.Batch) {
	if p.QoS == 2 && c.version >= packet.V5 {
		c.sess.ReleaseInbound(p.PacketID, b)
	}
}

// takeSlot takes an inflight slot for a QoS 1/2 publish. A 5.0 client over
// our Receive Maximum is disconnected [MQTT-3.3.4-9]; a 3.1.1 client waits.
func (c *conn) takeSlot() bool {
	select {
	case c.inflight <- struct{}{}:
		return true
	default:
	}
	if c.version >= packet.V5 {
		c.kick(packet.ReceiveMaximumExceeded)
		return false
	}
	select {
	case c.inflight <- struct{}{}:
		return true
	case <-c.closing:
		return false
	}
}

func (c *conn) releaseSlot() {
	select {
	case <-c.inflight:
	default:
	}
}

// topicOf resolves the topic name of p, applying 5.0 topic aliases.
// limited says that rc (TopicNameInvalid) is due to the topic limits.
func (c *conn) topicOf(p *packet.Publish) (name string, rc packet.ReasonCode, limited bool) {
	name, rc = c.resolveTopic(p)
	if rc == errTopicLimit {
		return "", packet.TopicNameInvalid, true
	}
	return name, rc, false
}

// errTopicLimit stands for a topic beyond the limits inside topicOf (a
// Reason Code no PUBLISH can earn otherwise).
const errTopicLimit = packet.ImplementationSpecificError

func (c *conn) resolveTopic(p *packet.Publish) (string, packet.ReasonCode) {
	if len(p.Properties.SubscriptionIdentifiers) > 0 {
		return "", packet.ProtocolError // [MQTT-3.3.4-6]
	}
	name := p.Topic
	if a := p.Properties.TopicAlias; a != nil {
		if *a == 0 || *a > c.inAliasMax {
			return "", packet.TopicAliasInvalid // [MQTT-3.3.2-9]
		}
		if name != "" && !c.topicAllowed(name) {
			return "", errTopicLimit // checked before the alias holds it
		}
		if name == "" {
			n, ok := c.inAliases[*a]
			if !ok {
				return "", packet.ProtocolError // [MQTT-3.3.4-?]: unknown alias
			}
			name = n
		} else {
			if c.inAliases == nil {
				c.inAliases = make(map[uint16]string)
			}
			c.inAliases[*a] = name
		}
	}
	if topic.ValidateName(name) != nil {
		return "", packet.TopicNameInvalid
	}
	if p.Properties.TopicAlias == nil && !c.topicAllowed(name) {
		return "", errTopicLimit
	}
	return name, packet.Success
}

// message builds the stored form of a received PUBLISH.
func (c *conn) message(p *packet.Publish, name string) *store.Message {
	now := c.srv.now()
	m := &store.Message{
		ID: c.srv.store.NextMessageID(), Publisher: c.clientID, Topic: name, Payload: p.Payload,
		QoS: p.QoS, Retain: p.Retain, PublishedAt: now, Props: storeProps(&p.Properties),
	}
	if e := p.Properties.MessageExpiryInterval; e != nil {
		m.ExpiresAt = now.Add(time.Duration(*e) * time.Second)
	}
	return m
}

// storeProps keeps the 5.0 properties that are forwarded with a message.
func storeProps(p *packet.Properties) store.Properties {
	sp := store.Properties{PayloadFormat: p.PayloadFormatIndicator, CorrelationData: p.CorrelationData}
	if p.ContentType != nil {
		sp.ContentType = *p.ContentType
	}
	if p.ResponseTopic != nil {
		sp.ResponseTopic = *p.ResponseTopic
	}
	for _, u := range p.User {
		sp.UserProperties = append(sp.UserProperties, store.UserProperty{Key: u.Key, Value: u.Value})
	}
	return sp
}

// onPubrel completes an inbound QoS 2 exchange.
func (c *conn) onPubrel(p *packet.Pubrel) {
	b := &store.Batch{}
	rc := packet.Success
	if !c.sess.ReleaseInbound(p.PacketID, b) && c.version >= packet.V5 {
		rc = packet.PacketIdentifierNotFound
	}
	ack := &packet.Pubcomp{PacketID: p.PacketID, ReasonCode: rc}
	c.inOrder(b, func(err error) {
		if err != nil {
			// No PUBCOMP: the client resends PUBREL after reconnecting.
			c.log.Error("storing PUBREL state", "client", c.clientID, "err", err)
			c.sess.KeepInbound(p.PacketID)
			c.close()
			return
		}
		c.queueControl(ack)
	})
}

// inOrder commits b (nil: nothing to write) and then runs ack, behind
// every commit this connection is waiting for, so acknowledgements go out
// in the order their packets arrived [MQTT-4.6.0-2]. With nothing to
// write or wait for, ack runs at once. Only the read loop calls it.
func (c *conn) inOrder(b *store.Batch, ack func(error)) {
	if (b == nil || b.Len() == 0) && c.pending.Load() == 0 {
		ack(nil)
		return
	}
	c.pending.Add(1)
	c.pendWG.Add(1)
	c.srv.com.submit(&job{b: b, done: func(err error) {
		ack(err)
		c.pending.Add(-1)
		c.pendWG.Done()
	}})
}

// onPuback completes an outbound QoS 1 delivery.
func (c *conn) onPuback(p *packet.Puback) {
	if err := c.sess.Puback(p.PacketID, c.ackBatch()); err != nil {
		c.log.Debug("PUBACK for an unknown packet identifier", "client", c.clientID, "id", p.PacketID)
	}
}

// onPubrec moves an outbound QoS 2 delivery to Released and sends PUBREL
// once that is durable.
func (c *conn) onPubrec(p *packet.Pubrec) {
	b := &store.Batch{}
	release, err := c.sess.Pubrec(p.PacketID, p.ReasonCode.IsError(), b)
	rel := &packet.Pubrel{PacketID: p.PacketID}
	switch {
	case err != nil:
		if c.version >= packet.V5 {
			rel.ReasonCode = packet.PacketIdentifierNotFound
		}
		c.queueControl(rel)
	case !release:
		b.NoSync = true
		c.submitAsync(b)
	case b.Len() == 0:
		c.queueControl(rel)
	default:
		c.srv.com.submit(&job{b: b, done: func(err error) {
			if err != nil {
				c.log.Error("storing PUBREC state", "client", c.clientID, "err", err)
				c.close()
				return
			}
			c.queueControl(rel)
		}})
	}
}

// onPubcomp completes an outbound QoS 2 delivery.
func (c *conn) onPubcomp(p *packet.Pubcomp) {
	if err := c.sess.Pubcomp(p.PacketID, c.ackBatch()); err != nil {
		c.log.Debug("PUBCOMP for an unknown packet identifier", "client", c.clientID, "id", p.PacketID)
	}
}

func (c *conn) submitAsync(b *store.Batch) {
	if b.Len() > 0 {
		c.srv.com.submit(&job{b: b, done: func(err error) {
			if err != nil {
				c.log.Error("storing acknowledgement", "client", c.clientID, "err", err)
			}
		}})
	}
}
