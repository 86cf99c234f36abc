package engine

import (
	"errors"

	"github.com/bollard-io/bollard/broker/packet"
	"github.com/bollard-io/bollard/broker/router"
	"github.com/bollard-io/bollard/broker/session"
	"github.com/bollard-io/bollard/broker/store"
	"github.com/bollard-io/bollard/broker/topic"
)

// errProtocol ends the connection with a protocol error.
var errProtocol = errors.New("engine: protocol error")

// newSub is a subscription added by a SUBSCRIBE, for retained delivery
// and to undo it when it cannot be stored.
type newSub struct {
	sub     store.Subscription
	existed bool
	prev    *store.Subscription // the subscription it replaced, when existed
}

// onSubscribe handles SUBSCRIBE. The subscriptions route messages from
// the moment the SUBSCRIBE is read (the session and the router have them
// before the commit), so a publish the broker reads after it reaches
// them; the SUBACK goes out once they are durable, and retained messages
// follow it. When they cannot be stored they are undone and the SUBACK
// says so (0x80), rather than leaving subscriptions that route but would
// not survive a restart.
func (c *conn) onSubscribe(p *packet.Subscribe) bool {
	var id uint32
	if ids := p.Properties.SubscriptionIdentifiers; len(ids) > 0 {
		id = ids[0]
	}
	b := &store.Batch{}
	codes := make([]packet.ReasonCode, len(p.Subscriptions))
	var added []newSub
	for i, ps := range p.Subscriptions {
		sub := store.Subscription{Filter: ps.Filter, QoS: ps.QoS, NoLocal: ps.NoLocal,
			RetainAsPublished: ps.RetainAsPublished, RetainHandling: ps.RetainHandling, ID: id}
		prev, had := c.sess.Subscription(sub.Filter)
		existed, rc, err := c.subscribe(sub, b)
		if err != nil {
			c.kick(packet.ProtocolError)
			return false
		}
		codes[i] = rc
		if !rc.IsError() {
			a := newSub{sub: sub, existed: existed}
			if had && existed {
				a.prev = &prev
			}
			added = append(added, a)
		}
	}
	if b.Len() > 0 || c.pending.Load() > 0 {
		if err := c.srv.com.commit(b); err != nil {
			c.srv.storeErrs.add(c.log, c.srv.now(), "storing subscriptions; undoing them", err, "client", c.clientID)
			c.undoSubscribe(added)
			for i := range codes {
				if !codes[i].IsError() {
					codes[i] = packet.UnspecifiedError // 3.1.1: 0x80 Failure
				}
			}
			added = nil
		}
	}
	// The retained messages are read before the SUBACK goes out: a client
	// that publishes a retained message once it has its SUBACK must get
	// that message once, live, and not a second time as a retained copy
	// read after its publish was applied.
	retained := make([][]*store.Message, len(added))
	for i, a := range added {
		retained[i] = c.retainedFor(a.sub, a.existed)
	}
	if len(added) > 0 {
		c.srv.rechoose(c.sess)
	}
	c.queueControl(&packet.Suback{PacketID: p.PacketID, ReasonCodes: codes})
	for i, a := range added {
		c.sendRetained(a.sub, retained[i])
	}
	return true
}

// subscribe adds one subscription to the session and the router.
func (c *conn) subscribe(sub store.Subscription, b *store.Batch) (existed bool, rc packet.ReasonCode, err error) {
	_, inner, shared, perr := topic.ParseShared(sub.Filter)
	if perr == nil && !shared {
		perr = topic.ValidateFilter(sub.Filter)
	}
	if perr != nil || (shared && inner == "") || !c.topicAllowed(sub.Filter) {
		return false, packet.TopicFilterInvalid, nil
	}
	if shared && sub.NoLocal {
		return false, 0, errProtocol // [MQTT-3.8.3-4]
	}
	if !c.srv.canSubscribe(c.principal, c.clientID, sub.Filter) {
		return false, packet.NotAuthorized, nil
	}
	existed, serr := c.sess.Subscribe(sub, c.srv.config().Limits.MaxSubscriptionsPerClient, b)
	if serr != nil {
		return false, packet.QuotaExceeded, nil
	}
	if _, err := c.srv.router.Subscribe(c.clientID, c.sess, sub); err != nil {
		c.sess.Unsubscribe(sub.Filter, b)
		return false, packet.TopicFilterInvalid, nil
	}
	return existed, packet.ReasonCode(sub.QoS), nil
}

// undoSubscribe removes the subscriptions of a SUBSCRIBE that could not
// be stored from the router and the session, putting back those they
// replaced; in reverse order, for a filter named twice.
func (c *conn) undoSubscribe(added []newSub) {
	for i := len(added) - 1; i >= 0; i-- {
		a := added[i]
		c.sess.UndoSubscribe(a.sub.Filter, a.prev)
		if a.prev != nil {
			if _, err := c.srv.router.Subscribe(c.clientID, c.sess, *a.prev); err != nil {
				c.log.Error("restoring a subscription", "client", c.clientID, "filter", a.prev.Filter, "err", err)
			}
			continue
		}
		c.srv.router.Unsubscribe(c.clientID, a.sub.Filter)
	}
}

// commitWait commits b behind every job of this connection and waits; an
// empty batch with nothing pending needs no commit.
func (c *conn) commitWait(b *store.Batch) bool {
	if b.Len() == 0 && c.pending.Load() == 0 {
		return true
	}
	if err := c.srv.com.commit(b); err != nil {
		c.srv.storeErrs.add(c.log, c.srv.now(), "storing subscriptions", err, "client", c.clientID)
		c.kick(packet.UnspecifiedError)
		return false
	}
	return true
}

// retainedFor returns the retained messages to send for a new
// subscription, as its Retain Handling option says [MQTT-3.3.1-9..11];
// shared subscriptions get none [MQTT-4.8.2]. Expired ones are dropped.
func (c *conn) retainedFor(sub store.Subscription, existed bool) []*store.Message {
	if _, _, shared, _ := topic.ParseShared(sub.Filter); shared {
		return nil
	}
	if sub.RetainHandling == 2 || (sub.RetainHandling == 1 && existed) {
		return nil
	}
	s := c.srv
	now := s.now()
	var out []*store.Message
	for _, rm := range s.router.Retained(sub.Filter) {
		if rm.Expired(now) {
			b := &store.Batch{NoSync: true}
			s.router.DropRetained(rm, b)
			s.com.submit(&job{b: b})
			continue
		}
		out = append(out, rm)
	}
	return out
}

// sendRetained queues the retained messages rms (from retainedFor) for
// the new subscription sub.
func (c *conn) sendRetained(sub store.Subscription, rms []*store.Message) {
	s := c.srv
	for _, rm := range rms {
		m := *rm
		m.ID = s.store.NextMessageID()
		d := router.Delivery{QoS: min(m.QoS, sub.QoS), Retain: true}
		if sub.ID != 0 {
			d.SubscriptionIDs = []uint32{sub.ID}
		}
		s.offerOne(c.sess, &m, d)
	}
}

// offerOne offers a message to one session through the ordered path.
func (s *Server) offerOne(sess *session.Session, m *store.Message, d router.Delivery) {
	b := &store.Batch{}
	s.seqMu.Lock()
	f := s.router.Offer(sess, m, d, b)
	if b.Len() == 0 {
		s.seqMu.Unlock()
		f.Settle(true)
		return
	}
	s.com.submit(&job{b: b, fan: f, onStored: func(err error) { f.Settle(err == nil) }})
	s.seqMu.Unlock()
}

// onUnsubscribe handles UNSUBSCRIBE.
func (c *conn) onUnsubscribe(p *packet.Unsubscribe) bool {
	b := &store.Batch{}
	codes := make([]packet.ReasonCode, len(p.Filters))
	removed := false
	for i, f := range p.Filters {
		existed := c.sess.Unsubscribe(f, b)
		c.srv.router.Unsubscribe(c.clientID, f)
		if !existed {
			codes[i] = packet.NoSubscriptionExisted
		}
		removed = removed || existed
	}
	if removed {
		c.srv.rechoose(c.sess)
	}
	if !c.commitWait(b) {
		return false
	}
	c.queueControl(&packet.Unsuback{PacketID: p.PacketID, ReasonCodes: codes})
	return true
}
