package session

import "github.com/bollard-io/bollard/broker/store"

// BeginInbound records that a QoS 2 PUBLISH with pid arrived. dup reports
// that pid is already awaiting its PUBREL: the message was delivered
// before and must not be routed again [MQTT-4.3.3-9]. Otherwise the
// PutInboundQoS2 for persistent sessions goes into b, the batch that routes
// the message.
func (s *Session) BeginInbound(pid uint16, b *store.Batch) (dup bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.inbound[pid]; ok {
		return true
	}
	s.addInbound(pid)
	if s.persistent() {
		b.PutInboundQoS2(s.rec.ClientID, pid)
	}
	return false
}

// InboundFull reports whether a QoS 2 PUBLISH with pid would open one
// inbound exchange more than max (the exchanges awaiting their PUBREL); a
// resent pid opens none.
func (s *Session) InboundFull(pid uint16, max int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, resent := s.inbound[pid]
	return !resent && len(s.inbound) >= max
}

// AbortInbound forgets pid after the batch of BeginInbound failed.
func (s *Session) AbortInbound(pid uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.inbound, pid)
}

// ReleaseInbound handles a PUBREL for pid and reports whether pid was
// known (5.0 answers PUBCOMP 0x92 otherwise).
func (s *Session) ReleaseInbound(pid uint16, b *store.Batch) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.inbound[pid]; !ok {
		return false
	}
	delete(s.inbound, pid)
	if s.persistent() {
		b.DeleteInboundQoS2(s.rec.ClientID, pid)
	}
	return true
}

// KeepInbound records pid as awaiting its PUBREL again, after the batch of
// ReleaseInbound failed: the stored state is still there, and the client
// resends PUBREL after reconnecting.
func (s *Session) KeepInbound(pid uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addInbound(pid)
}

// addInbound records pid, making the set on first use: most sessions never
// receive a QoS 2 PUBLISH.
func (s *Session) addInbound(pid uint16) {
	if s.inbound == nil {
		s.inbound = make(map[uint16]struct{})
	}
	s.inbound[pid] = struct{}{}
}

// ClearInbound forgets all inbound QoS 2 state (clean start).
func (s *Session) ClearInbound() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.inbound)
}
