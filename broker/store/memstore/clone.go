package memstore

import "github.com/bollard-io/bollard/broker/store"

// cloneBytes copies b, keeping nil as nil.
func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

// cloneMessage returns a deep copy of m.
func cloneMessage(m *store.Message) *store.Message {
	c := *m
	c.Payload = cloneBytes(m.Payload)
	c.Props.CorrelationData = cloneBytes(m.Props.CorrelationData)
	if m.Props.PayloadFormat != nil {
		v := *m.Props.PayloadFormat
		c.Props.PayloadFormat = &v
	}
	if m.Props.UserProperties != nil {
		c.Props.UserProperties = append([]store.UserProperty{}, m.Props.UserProperties...)
	}
	return &c
}

// cloneSession returns a deep copy of s.
func cloneSession(s *store.Session) store.Session {
	c := *s
	if s.Will != nil {
		w := *s.Will
		w.Message = *cloneMessage(&s.Will.Message)
		c.Will = &w
	}
	return c
}

// cloneEntry returns a deep copy of e.
func cloneEntry(e *store.QueueEntry) store.QueueEntry {
	c := *e
	if e.SubscriptionIDs != nil {
		c.SubscriptionIDs = append([]uint32{}, e.SubscriptionIDs...)
	}
	return c
}
