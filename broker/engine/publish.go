package engine

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/bollard-io/bollard/broker/packet"
	"github.com/bollard-io/bollard/broker/router"
	"github.com/bollard-io/bollard/broker/store"
	"github.com/bollard-io/bollard/broker/topic"
)

// onPublish handles a PUBLISH from the client. It is the one place that
// says what happens to a publish, in the order it happens; the functions
// of each step follow it in this file:
//
//  1. validate (validatePublish, on the read loop): topic and alias,
//     Receive Maximum and inbound QoS 2 slots, the ACL, retained limits.
//     A publish refused here is answered in order (ackInOrder) and goes
//     no further.
//  2. route (Server.route, under seqMu): the router offers the message to
//     every matching session; each assigns its queue Seq and appends its
//     store operations to the publish's batch, which already holds the
//     inbound QoS 2 state (BeginInbound). A session without persistence
//     queues the message in memory and can deliver it from here on.
//  3. store (the committer, committer.go): the batch is submitted in the
//     same seqMu step, so batches reach the store in Seq order, and is
//     committed with every batch that queued up meanwhile (group commit:
//     one fsync). No lock is held while it commits.
//  4. deliver (publish.onStored, on the committer goroutine once the
//     commit returned; the committer settles the entries of a whole group
//     first, one call per session): the stored queue entries become
//     deliverable (the sessions wake their writers, which send them) and
//     the retained change applies, before the acknowledgement, so a
//     publisher that subscribes once it has its PUBACK finds its retained
//     message. With nothing to store and no acknowledgement to wait for,
//     route runs onStored at once: a publish to clean online subscribers
//     only needs no commit round. A publish that came alone (one message
//     in flight) is then acknowledged first, the PUBACK written by this
//     read loop at once (flushDeferred), and then written to a single
//     such subscriber by the same read loop (route's wakeList);
//     otherwise the writer goroutines are woken.
//  5. acknowledge (conn.acknowledge, from onStored): PUBACK or PUBREC is
//     queued for the publisher's connection, behind every acknowledgement
//     of the packets it sent before (pendingAck); 0x97 when a queue
//     refused the message under RejectPublish, an error when the commit
//     failed. Queued on the read loop, it is written by the read loop
//     before it next waits for the network (endDefer); queued on the
//     committer goroutine, by the writer goroutine.
//
// A QoS 0 publish takes the same path with nothing to acknowledge, and so
// does a will (publishWill) from step 2 on.
func (c *conn) onPublish(p *packet.Publish) bool {
	m, ok := c.validatePublish(p)
	if m == nil {
		return ok
	}
	b := getBatch()
	if p.QoS == 2 && c.sess.BeginInbound(p.PacketID, b) {
		// A resent PUBLISH: PUBREC again, not routed again.
		putBatch(b)
		c.ackInOrder(ackOf(p), packet.Success)
		return true
	}
	pub, behind := publish{srv: c.srv, m: m}, false
	if p.QoS > 0 {
		pub.c, pub.ack = c, ackOf(p)
		behind = c.pendingAck()
	}
	var wl *wakeList
	if c.alone() {
		wl = &c.wakes
	}
	c.srv.route(pub, b, behind, wl)
	c.srv.com.throttle()
	return true
}

// validatePublish checks a PUBLISH and builds the message to route. It
// returns nil when the publish goes no further: answered in order (ok) or
// the connection ends (!ok).
func (c *conn) validatePublish(p *packet.Publish) (m *store.Message, ok bool) {
	name, rc, limited := c.topicOf(p)
	if limited && c.version >= packet.V5 && p.QoS > 0 {
		// Well-formed but not accepted: the 5.0 publisher learns it from
		// the acknowledgement and keeps its connection.
		if !c.takeSlot() {
			return nil, false
		}
		c.ackInOrder(ackOf(p), packet.TopicNameInvalid)
		return nil, true
	}
	switch {
	case rc == packet.Success:
	case limited: // counted by its limit
		c.kick(rc)
		return nil, false
	default:
		c.violation(rc, fmt.Errorf("PUBLISH refused: %v", rc))
		return nil, false
	}
	if p.QoS == 2 && c.sess.InboundFull(p.PacketID, int(c.srv.config().Limits.MaxInflight)) {
		// A QoS 2 exchange holds its place until PUBCOMP, so the Receive
		// Maximum counts it until then [MQTT-3.3.4-9]; 3.1.1 has no such
		// rule, but the broker bounds the state a client makes it hold.
		c.srv.refused.add(c.log, LimitInboundQoS2, "client", c.clientID)
		c.kick(packet.ReceiveMaximumExceeded)
		return nil, false
	}
	if p.QoS > 0 && !c.takeSlot() {
		return nil, false
	}
	c.srv.stats.msgsIn[p.QoS].Add(1)
	if !c.srv.canPublish(c.principal, c.clientID, name) {
		c.srv.stats.drop(c.log, c.clientID, DropNotAuthorized, 1)
		c.ackInOrder(ackOf(p), packet.NotAuthorized)
		return nil, true
	}
	m = c.message(p, name)
	if m.Retain && !c.srv.retainAdmitted(m, c.log, c.clientID) {
		if c.version >= packet.V5 && p.QoS > 0 {
			// Refused whole: the 5.0 publisher learns it and may retry.
			c.ackInOrder(ackOf(p), packet.QuotaExceeded)
			return nil, true
		}
		m.Retain = false // a publisher that cannot learn it: delivered, not retained
	}
	return m, true
}

// route fans pub's message out into b (which may already hold operations,
// such as the inbound QoS 2 state) and submits b to the committer, the
// Seqs assigned and the batch submitted under seqMu. With nothing to store
// and no earlier acknowledgement to wait for (behind), the publish is
// stored at once: onStored runs here. route takes b over: onStored hands
// it back to batchPool, so the caller must not use it after route.
//
// wl, when not nil, collects the connections the fan-out makes
// deliverable (sessions without persistence), and route writes to the
// one it holds from the calling goroutine once the fan-out is done
// (flushInline; see notify; several are left to their writers): a
// delivery to an online clean session then costs no goroutine hand-off.
// When the publish stores nothing, its acknowledgement is written before
// those deliveries: a device that publishes one message at a time waits
// for its PUBACK, not for the broker's write to the subscriber. A publish that
// stores nothing needs no commit round and makes its entries deliverable
// here; one that stores makes them deliverable on the committer
// goroutine, which wakes the writers.
func (s *Server) route(pub publish, b *store.Batch, behind bool, wl *wakeList) {
	full := s.storeFull(pub.m)
	s.seqMu.Lock()
	if wl != nil {
		wl.open()
		s.wakes.Store(wl)
	}
	fan := s.router.Route(pub.m, full, b)
	if wl != nil {
		s.wakes.Store(nil)
	}
	if fan.Rejected && pub.c != nil {
		pub.c.endRejected(pub.ack, b)
	}
	if b.Len() == 0 && !behind {
		s.seqMu.Unlock()
		if wl == nil {
			pub.onStored(fan, b, nil)
			return
		}
		// A publish that came alone: its acknowledgement goes out first,
		// then its deliveries. The publisher is waiting for the PUBACK;
		// the subscriber waits one write longer for its delivery.
		if c := pub.c; c != nil {
			pub.onStored(fan, b, nil)
			c.flushDeferred()
			wl.flush()
			return
		}
		wl.flush() // QoS 0: nothing to acknowledge, the deliveries first
		pub.onStored(fan, b, nil)
		return
	}
	j := &job{b: b, extra: pub.m.Size(), fan: fan, pub: pub}
	// An online persistent subscriber's QoS 1 entry may go out beside the
	// commit once the batch has its place in the commit order (early
	// delivery, session/doc.go): taken now, as the submitted job may
	// finish and release fan at once, and made deliverable after the
	// submission, still under seqMu.
	s.early = s.early[:0]
	if s.config().Durability.Early() {
		s.early = fan.AppendEarly(s.early)
	}
	if wl == nil {
		s.com.submit(j)
		s.deliverEarly()
		s.seqMu.Unlock()
		return
	}
	// A publish that came alone commits inline when the committer is
	// idle (inlinecommit.go): applied once seqMu is released, its fsync waited
	// for and onStored run here.
	inline := s.com.startInline(j)
	if len(s.early) > 0 {
		s.wakes.Store(wl) // collected in wl like the clean subscribers
		s.deliverEarly()
		s.wakes.Store(nil)
	}
	s.seqMu.Unlock()
	if inline {
		s.com.applyInline()
	}
	wl.flush()
	if inline {
		s.finishInline(wl)
	}
}

// deliverEarly makes the fan-out's early entries (s.early) deliverable;
// seqMu is held.
func (s *Server) deliverEarly() {
	for _, e := range s.early {
		e.Deliverable()
	}
	clear(s.early)
}

// publish is one routed publish on its way through the committer. What
// its job does once stored is spelled out in fields rather than a
// closure, so that a publish allocates no callback.
type publish struct {
	srv *Server // nil: the job is not a publish
	m   *store.Message
	c   *conn // acknowledges ack; nil: nothing to acknowledge
	ack pubAck
}

// pubAck is what acknowledging a PUBLISH needs of it. The engine keeps
// this, not the packet, past the packet's dispatch: the read loop hands
// the packet back to its reader for the next one (packet.Reader.Recycle).
type pubAck struct {
	qos byte
	id  uint16
}

func ackOf(p *packet.Publish) pubAck { return pubAck{qos: p.QoS, id: p.PacketID} }

// onStored runs once the publish's batch b is stored, or failed (err): it
// settles the fan-out, making the queue entries deliverable and applying
// the retained change (on success), acknowledges the publish, and recycles
// b and fan. It runs on the committer goroutine (or in route), so it must
// not block or submit.
func (pub *publish) onStored(fan *router.Fanout, b *store.Batch, err error) {
	fan.Settle(err == nil)
	if err != nil {
		pub.srv.storeErrs.add(pub.srv.log, pub.srv.now(), "storing a published message", err, "topic", pub.m.Topic)
	}
	if c := pub.c; c != nil {
		c.acknowledge(pub.ack, fan.Rejected, err)
		c.ackDone()
	}
	putBatch(b)
	fan.Release()
}

// acknowledge answers a routed QoS 1/2 publish; rejected: some
// subscriber's queue refused it (Fanout.Rejected).
func (c *conn) acknowledge(p pubAck, rejected bool, err error) {
	switch {
	case err != nil:
		if p.qos == 2 {
			c.sess.AbortInbound(p.id)
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
func (c *conn) ackPublish(p pubAck, rc packet.ReasonCode) {
	if p.qos == 0 {
		return
	}
	if c.version < packet.V5 && rc.IsError() {
		rc = packet.Success
	}
	c.releaseSlot()
	c.queueAck(p, rc)
}

// ackInOrder answers a publish that is not routed with rc, in its turn.
func (c *conn) ackInOrder(p pubAck, rc packet.ReasonCode) {
	c.inOrder(nil, func(error) { c.ackPublish(p, rc) })
}

// pendingAck counts an acknowledgement that the committer will send (in
// pending and pendWG) and reports whether earlier ones are still pending:
// then this one waits for its turn. Only the read loop calls it; ackDone
// ends the count.
func (c *conn) pendingAck() (behind bool) {
	behind = c.pending.Load() > 0
	c.pending.Add(1)
	c.pendWG.Add(1)
	return behind
}

// ackDone ends the count of pendingAck once the acknowledgement was sent.
func (c *conn) ackDone() {
	c.pending.Add(-1)
	c.pendWG.Done()
}

// endRejected ends the QoS 2 exchange of a 5.0 publish that a queue
// refused (PUBREC 0x97 ends it, section 4.3.3): its inbound state is
// forgotten in the batch that stores it, so the same packet identifier
// starts a new exchange. It runs in route, under seqMu and before the
// batch is submitted: the acknowledgement runs on the committer
// goroutine, which must not submit (a second batch from there waited on
// the committer's own full queue: a deadlock of every commit). A failed
// commit stored nothing, and acknowledge forgets the state (AbortInbound).
func (c *conn) endRejected(p pubAck, b *store.Batch) {
	if p.qos == 2 && c.version >= packet.V5 {
		c.sess.ReleaseInbound(p.id, b)
	}
}

// publishWill publishes a session's will message: from route on, as a
// client's QoS 0 publish.
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
	s.route(publish{srv: s, m: &m}, getBatch(), false, nil)
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

// takeSlot takes an inflight slot for a QoS 1/2 publish. A 5.0 client over
// our Receive Maximum is disconnected [MQTT-3.3.4-9]; a 3.1.1 client waits.
func (c *conn) takeSlot() bool {
	select {
	case c.inflight <- struct{}{}:
		return true
	default:
	}
	if c.version >= packet.V5 {
		c.violation(packet.ReceiveMaximumExceeded, errors.New("more QoS 1 and 2 publishes in flight than the Receive Maximum"))
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
			c.srv.storeErrs.add(c.log, c.srv.now(), "storing PUBREL state", err, "client", c.clientID)
			c.sess.KeepInbound(ack.PacketID) // not p's: p is recycled once dispatched
			c.close()
			return
		}
		c.queueControl(ack)
	})
}

// inOrder commits b (nil: nothing to write) and then runs acknowledge,
// behind every commit this connection is waiting for, so
// acknowledgements go out in the order their packets arrived
// [MQTT-4.6.0-2]. With nothing to write or wait for, acknowledge runs at
// once. Only the read loop calls it.
func (c *conn) inOrder(b *store.Batch, acknowledge func(error)) {
	if (b == nil || b.Len() == 0) && c.pending.Load() == 0 {
		acknowledge(nil)
		return
	}
	c.pendingAck()
	c.srv.com.submit(&job{b: b, onStored: func(err error) {
		acknowledge(err)
		c.ackDone()
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
		c.srv.com.submit(&job{b: b, onStored: func(err error) {
			if err != nil {
				c.srv.storeErrs.add(c.log, c.srv.now(), "storing PUBREC state", err, "client", c.clientID)
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
		c.srv.com.submit(&job{b: b, onStored: func(err error) {
			if err != nil {
				c.srv.storeErrs.add(c.log, c.srv.now(), "storing acknowledgement", err, "client", c.clientID)
			}
		}})
	}
}
