package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/bollard-io/bollard/broker/auth"
	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/broker/packet"
	"github.com/bollard-io/bollard/broker/session"
	"github.com/bollard-io/bollard/broker/store"
	"github.com/bollard-io/bollard/broker/topic"
)

// handleConnect admits or refuses a client. On success the CONNACK is
// queued, the writer runs and the session is attached.
func (c *conn) handleConnect(p *packet.Connect) bool {
	s := c.srv
	cfg := s.config()
	c.version = p.ProtocolVersion
	c.r.Version = p.ProtocolVersion
	assigned, rc := c.checkClientID(p, cfg)
	if rc == packet.Success && p.Properties.AuthenticationMethod != nil {
		// Enhanced authentication is not supported [MQTT-4.12.0-1].
		rc = packet.BadAuthenticationMethod
	}
	if rc == packet.Success {
		rc = c.login(p)
	}
	var will *store.Will
	if rc == packet.Success {
		will, rc = c.buildWill(p)
	}
	if rc == packet.Success && !s.reserveConn(c.clientID, cfg.Limits.MaxConnections) {
		c.refusal(LimitConnections)
		rc = packet.ServerBusy
	}
	if rc != packet.Success {
		c.refuse(rc)
		return false
	}
	expiry := grantExpiry(p, cfg, s.expiryCap(c.clientID, c.principal, p.CleanStart))
	c.connectExpiry = expiry
	present, rc := s.claimSession(c, p.CleanStart, expiry, will)
	if rc != packet.Success {
		s.stats.connections.Add(-1)
		c.refuse(rc)
		return false
	}
	c.setLimits(p, cfg)
	c.queueControl(c.connack(p, cfg, present, assigned, expiry))
	c.connected.Store(true)
	// Attached before the writer sends CONNACK: a message published once
	// the client has its CONNACK finds the session online (a QoS 0 one
	// was dropped as offline before). Whatever Attach makes sendable is
	// written behind the CONNACK, which is queued first.
	if err := c.sess.Attach(c.sendWindow(p, cfg), c.notify); err != nil {
		c.log.Error("reading the session queue", "client", c.clientID, "err", err)
	}
	c.writing = true
	go c.writeLoop()
	c.log.Debug("client connected", "client", c.clientID, "version", c.version, "present", present)
	return true
}

// reserveConn counts a new connection unless limits.maxConnections (max,
// 0: none) is reached. A client taking over its own live connection is let
// through: the old one is about to close.
func (s *Server) reserveConn(clientID string, max int) bool {
	for {
		n := s.stats.connections.Load()
		if max > 0 && n >= int64(max) && !s.online(clientID) {
			return false
		}
		if s.stats.connections.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// online reports whether a connection holds the session of id.
func (s *Server) online(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.sessions[id]
	return e != nil && e.owner != nil
}

// checkClientID validates the client identifier, assigning one when it is
// empty and the protocol allows it.
func (c *conn) checkClientID(p *packet.Connect, cfg *config.Config) (assigned bool, rc packet.ReasonCode) {
	c.clientID = p.ClientID
	if len(p.ClientID) > cfg.Limits.MaxClientIDLength {
		return false, packet.ClientIdentifierNotValid
	}
	if p.ClientID != "" {
		return false, packet.Success
	}
	if c.version < packet.V5 && !p.CleanStart {
		return false, packet.ClientIdentifierNotValid // [MQTT-3.1.3-8]
	}
	var b [12]byte
	_, _ = rand.Read(b[:])
	c.clientID = "auto-" + hex.EncodeToString(b[:])
	return true, packet.Success
}

// login authenticates the CONNECT. A source address backing off after
// failed logins is refused at once, and a password check waits for one of
// the login.maxConcurrentChecks slots, sources that logged in before
// first and those with failed logins last (see checkSlots).
func (c *conn) login(p *packet.Connect) packet.ReasonCode {
	s := c.srv
	lc := s.config().Login
	src := sourceKey(c.nc.RemoteAddr())
	g := &s.logins
	blocked, suspect := g.backoff.blocked(src, s.now(), lc.FailureBackoffMax.D())
	if blocked && lc.FailureBackoff > 0 {
		g.backedUp.Add(1)
		return packet.ConnectionRateExceeded
	}
	user := ""
	if p.UsernameFlag {
		user = p.Username
	}
	if user != "" && p.PasswordFlag {
		if !g.acquireCheck(lc, src, suspect, s.now()) {
			return packet.ServerBusy
		}
		defer g.checks.release()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	principal, err := s.authenticate(ctx, c.clientID, user, p.Password, p.PasswordFlag)
	switch {
	case err == nil:
		c.principal = principal
		if user != "" {
			g.succeeded(lc, src, s.now())
		}
		return packet.Success
	case errors.Is(err, auth.ErrBadCredentials):
		g.failed(lc, src, s.now())
		return packet.BadUserNameOrPassword
	default:
		return packet.NotAuthorized
	}
}

// buildWill checks the will message and turns it into its stored form. The
// message expiry is kept as ExpiresAt-PublishedAt and rebased when the
// will is published.
func (c *conn) buildWill(p *packet.Connect) (*store.Will, packet.ReasonCode) {
	if !p.WillFlag {
		return nil, packet.Success
	}
	if topic.ValidateName(p.WillTopic) != nil || !c.topicAllowed(p.WillTopic) {
		return nil, packet.TopicNameInvalid
	}
	if !c.srv.canPublish(c.principal, c.clientID, p.WillTopic) {
		return nil, packet.NotAuthorized
	}
	now := c.srv.now()
	m := store.Message{Publisher: c.clientID, Topic: p.WillTopic, Payload: p.WillPayload,
		QoS: p.WillQoS, Retain: p.WillRetain, PublishedAt: now, Props: storeProps(&p.WillProperties)}
	if e := p.WillProperties.MessageExpiryInterval; e != nil {
		m.ExpiresAt = now.Add(time.Duration(*e) * time.Second)
	}
	w := &store.Will{Message: m}
	if d := p.WillProperties.WillDelayInterval; d != nil {
		w.DelayInterval = *d
	}
	return w, packet.Success
}

// grantExpiry is the session expiry interval granted to the client, at
// most maxSecs (the maxSessionExpiry of its queue policy, see expiryCap).
func grantExpiry(p *packet.Connect, cfg *config.Config, maxSecs uint32) uint32 {
	if p.ProtocolVersion < packet.V5 {
		if p.CleanStart {
			return 0
		}
		return min(uint32(cfg.Sessions.DefaultSessionExpiry.D()/time.Second), maxSecs)
	}
	if e := p.Properties.SessionExpiryInterval; e != nil {
		return min(*e, maxSecs)
	}
	return 0
}

// setLimits records the client's and the server's limits for this
// connection.
func (c *conn) setLimits(p *packet.Connect, cfg *config.Config) {
	c.outMax = cfg.Limits.OutboundBufferBytes
	c.keepAlive = time.Duration(p.KeepAlive) * time.Second
	// The cap applies to every version: 5.0 clients are told the Server
	// Keep Alive; a 3.1.1 client cannot be, so one that asked for 0 (no
	// keep alive) or more is closed after 1.5 times the cap of silence
	// all the same, and an idle connection cannot be held open forever.
	if max := cfg.Limits.MaxKeepAlive.D(); max > 0 && (c.keepAlive == 0 || c.keepAlive > max) {
		c.keepAlive, c.keepAliveCapped = max, true
	}
	c.inflight = make(chan struct{}, int(cfg.Limits.MaxInflight))
	if c.version < packet.V5 {
		return
	}
	if m := p.Properties.MaximumPacketSize; m != nil {
		c.sendMax = *m
	}
	if a := p.Properties.TopicAliasMaximum; a != nil {
		c.aliasMax = *a
	}
	c.inAliasMax = cfg.Limits.MaxTopicAliases
}

// sendWindow is the most unacknowledged QoS 1/2 messages sent to the
// client: its Receive Maximum, capped by limits.maxInflight.
func (c *conn) sendWindow(p *packet.Connect, cfg *config.Config) int {
	w := int(cfg.Limits.MaxInflight)
	if rm := p.Properties.ReceiveMaximum; c.version >= packet.V5 && rm != nil {
		w = min(w, int(*rm))
	}
	return w
}

func (c *conn) connack(p *packet.Connect, cfg *config.Config, present, assigned bool, expiry uint32) *packet.Connack {
	ack := &packet.Connack{SessionPresent: present}
	if c.version < packet.V5 {
		return ack
	}
	pr := &ack.Properties
	rm, ps, ta := cfg.Limits.MaxInflight, cfg.Limits.MaxPacketSize, cfg.Limits.MaxTopicAliases
	pr.ReceiveMaximum, pr.MaximumPacketSize, pr.TopicAliasMaximum = &rm, &ps, &ta
	if assigned {
		pr.AssignedClientIdentifier = &c.clientID
	}
	if req := p.Properties.SessionExpiryInterval; req != nil && *req != expiry {
		pr.SessionExpiryInterval = &expiry
	}
	if ka := uint16(c.keepAlive / time.Second); ka != p.KeepAlive {
		pr.ServerKeepAlive = &ka
	}
	return ack
}

// refusalLogEvery is how often a refused CONNECT is logged at most per
// reason code, except failed logins (logRefusal).
const refusalLogEvery = 10 * time.Second

// logRefusal logs a refused CONNECT. A failed login (bad user name or
// password, not authorized) is logged every time: who tried is what an
// operator looks for. The other reasons (server busy, quota, back-off,
// not serving, ...) are counted by their limits and can come by the
// thousand (a fleet reconnecting, a member that does not serve): at most
// one line per reason code and refusalLogEvery, with the number left out.
func (s *Server) logRefusal(log *slog.Logger, rc packet.ReasonCode, attrs ...any) {
	attrs = append(attrs, "reason", rc.String())
	if rc == packet.BadUserNameOrPassword || rc == packet.NotAuthorized {
		log.Info("connection refused", attrs...)
		return
	}
	if ok, skipped := s.refusalLog.Allow(rc.String(), s.now()); ok {
		log.Info("connection refused", append(attrs, "unlogged_before", skipped)...)
	}
}

// refuse answers CONNECT with an error code and ends the connection.
func (c *conn) refuse(rc packet.ReasonCode) {
	c.sendRefusal(&packet.Connack{ReasonCode: rc})
}

// sendRefusal writes ack, a CONNACK that refuses the connection, in the
// form c.version allows (see refusalVersion).
func (c *conn) sendRefusal(ack *packet.Connack) {
	c.srv.logRefusal(c.log, ack.ReasonCode, c.refusalAttrs(ack.ReasonCode, "client", c.clientID, "remote", c.nc.RemoteAddr().String())...)
	c.writeRefusal(ack)
}

// refusalAttrs appends to attrs what a log line of a refused CONNECT
// says of the refusal: the CONNACK's code and the limit that refused it,
// if one did.
func (c *conn) refusalAttrs(rc packet.ReasonCode, attrs ...any) []any {
	attrs = append(attrs, "code", fmt.Sprintf("0x%02X", byte(rc)))
	if c.refusedBy != "" {
		attrs = append(attrs, "limit", c.refusedBy)
	}
	return attrs
}

// writeRefusal is sendRefusal without its log line, for a refusal logged
// as a connection error (readConnect).
func (c *conn) writeRefusal(ack *packet.Connack) {
	rc := ack.ReasonCode
	version, ok := refusalVersion(c.version, rc)
	if !ok {
		return
	}
	if version < packet.V5 {
		ack.ReasonCode, ack.Properties = packet.LegacyConnackCode(rc), packet.Properties{}
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := packet.Write(c.nc, ack, version); err != nil {
		c.log.Debug("writing CONNACK", "err", err)
	}
}

// refusalVersion is the protocol version of the CONNACK that refuses a
// CONNECT of the given level with rc; ok=false: close without one.
//   - 5.0 sends the Reason Code when CONNACK can carry it (section 4.13.1).
//   - 3.1 and 3.1.1 have return codes only for an unacceptable level, a
//     rejected identifier, credentials, authorization and availability;
//     a malformed CONNECT or a protocol violation closes the connection
//     without CONNACK [MQTT-4.8.0-1].
//   - An unknown level gets the 3.1.1 return code 1 (unacceptable protocol
//     level) [MQTT-3.1.2-2]: a client of any version can read that form.
func refusalVersion(level byte, rc packet.ReasonCode) (byte, bool) {
	switch level {
	case packet.V5:
		return level, rc.ValidFor(packet.CONNACK, packet.V5)
	case packet.V31, packet.V311:
		switch rc {
		case packet.MalformedPacket, packet.ProtocolError, packet.TopicNameInvalid, packet.PacketTooLarge:
			return level, false
		}
		return level, true
	}
	return packet.V311, rc == packet.UnsupportedProtocolVersion
}

// claimSession finds, creates or takes over the session of c.clientID.
func (s *Server) claimSession(c *conn, clean bool, expiry uint32, will *store.Will) (present bool, rc packet.ReasonCode) {
	e, rc := s.lockFreeSession(c)
	if rc != packet.Success {
		return false, rc
	}
	// s.mu is held.
	var b store.Batch
	var oldWill *store.Will
	// A session that is not persistent ends with its connection, also when
	// a takeover closed it [MQTT-3.1.2-6]: only persistent ones resume.
	if e != nil && (clean || !e.sess.Persistent()) {
		oldWill = e.sess.TakeWill(nil)
		s.removeSessionLocked(c.clientID, e, &b)
		e = nil
	}
	present = e != nil
	if e == nil {
		if rc := s.sessionQuotaLocked(c); rc != packet.Success {
			s.mu.Unlock()
			if oldWill != nil {
				s.publishWill(c.clientID, oldWill)
			}
			if b.Len() > 0 {
				if err := s.commitOrdered(&b); err != nil {
					s.storeErrs.add(s.log, s.now(), "storing session", err, "client", c.clientID)
				}
			}
			return false, rc
		}
		rec := store.Session{ClientID: c.clientID, Principal: c.principal, CreatedAt: s.now()}
		e = &sessionEntry{sess: session.New(rec, s.chooseLimits(c.clientID, c.principal, nil), s.env()),
			principal: c.principal}
		s.addSessionLocked(c.clientID, e)
	}
	if present && expiry == 0 && e.sess.Persistent() {
		// Keep the stored session until the connection ends, then delete it.
		c.expiryZero = true
		expiry = e.sess.Record().ExpiryInterval
	}
	e.owner = c
	c.entry, c.sess = e, e.sess
	e.sess.Connect(c.version, expiry, will, &b)
	s.mu.Unlock()
	if oldWill != nil {
		s.publishWill(c.clientID, oldWill)
	}
	if err := s.commitOrdered(&b); err != nil {
		s.storeErrs.add(s.log, s.now(), "storing session", err, "client", c.clientID)
		s.mu.Lock()
		e.owner = nil
		if !present && s.sessions[c.clientID] == e {
			s.removeSessionLocked(c.clientID, e, &store.Batch{})
		}
		s.mu.Unlock()
		return false, packet.UnspecifiedError
	}
	return present, packet.Success
}

// commitOrdered commits b behind every fan-out batch submitted so far. A
// batch that deletes a session must not overtake a publish that offered
// the session a message just before it was unregistered: that queue entry
// would outlive the session in the store and reach a later session with
// the same client ID after a restart.
func (s *Server) commitOrdered(b *store.Batch) error {
	done := make(chan error, 1)
	s.seqMu.Lock()
	s.com.submit(&job{b: b, onStored: func(err error) { done <- err }})
	s.seqMu.Unlock()
	return <-done
}

// lockFreeSession returns with s.mu held and the existing session of
// c.clientID (or nil) free of any connection, taking over the one that
// holds it. On refusal s.mu is not held.
func (s *Server) lockFreeSession(c *conn) (*sessionEntry, packet.ReasonCode) {
	for {
		s.mu.Lock()
		if s.draining.Load() || s.quiesced.Load() {
			s.mu.Unlock()
			return nil, packet.ServerUnavailable
		}
		e := s.sessions[c.clientID]
		if e == nil {
			return nil, packet.Success
		}
		if e.sess.Principal() != c.principal && !s.config().Sessions.AllowTakeoverByOtherPrincipal {
			s.mu.Unlock()
			return nil, packet.NotAuthorized
		}
		old := e.owner
		if old == nil {
			return e, packet.Success
		}
		s.mu.Unlock()
		old.takeover()
		select {
		case <-old.done:
		case <-time.After(takeoverWait):
			return nil, packet.ServerBusy
		}
	}
}

// removeSessionLocked forgets a session: registry, router, and (in b) the
// store. s.mu must be held.
func (s *Server) removeSessionLocked(id string, e *sessionEntry, b *store.Batch) {
	delete(s.sessions, id)
	s.listRemoveLocked(e)
	e.sess.Release()
	if s.principals[e.principal]--; s.principals[e.principal] <= 0 {
		delete(s.principals, e.principal)
	}
	subs := e.sess.Subscriptions()
	filters := make([]string, len(subs))
	for i, sub := range subs {
		filters[i] = sub.Filter
	}
	s.router.Unregister(id, filters)
	b.DeleteSession(id)
}

// detach ends c's hold on its session: the disconnection time and will are
// stored, a non-persistent session is deleted, and due wills published.
func (s *Server) detach(c *conn) {
	s.stats.connections.Add(-1)
	c.endMu.Lock()
	keepWill, newExpiry := c.keepWill, c.newExpiry
	c.endMu.Unlock()
	sess := c.sess
	// The Sent marks of unacknowledged QoS 1 deliveries, committed ahead
	// of (and synced with) b, before the session can be attached again.
	marks := &store.Batch{NoSync: true}
	sess.DetachMarks(marks)
	if marks.Len() > 0 {
		s.com.submit(&job{b: marks, onStored: func(err error) {
			if err != nil {
				s.storeErrs.add(s.log, s.now(), "storing delivery state", err, "client", c.clientID)
			}
		}})
	}
	var b store.Batch
	if c.expiryZero {
		zero := uint32(0)
		newExpiry = &zero
	}
	if newExpiry != nil {
		sess.SetExpiry(*newExpiry, &b)
	}
	sess.Disconnected(keepWill, &b)
	var will *store.Will
	s.mu.Lock()
	if c.entry.owner == c {
		c.entry.owner = nil
	}
	if !sess.Persistent() && s.sessions[c.clientID] == c.entry {
		will = sess.TakeWill(nil)
		s.removeSessionLocked(c.clientID, c.entry, &b)
	} else if due := sess.WillDueAt(); !due.IsZero() && !due.After(s.now()) {
		will = sess.TakeWill(&b)
	}
	s.mu.Unlock()
	if err := s.commitOrdered(&b); err != nil {
		s.storeErrs.add(s.log, s.now(), "storing session disconnection", err, "client", c.clientID)
	}
	if will != nil {
		s.publishWill(c.clientID, will)
	}
	if sess.Persistent() {
		s.sweep.schedule(c.entry)
	}
	c.log.Debug("client disconnected", "client", c.clientID)
}
