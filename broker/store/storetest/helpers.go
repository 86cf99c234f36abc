package storetest

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/store"
)

var ctx = context.Background()

// base is a fixed instant used for record times.
var base = time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)

// commit builds a batch with fill and commits it, failing the test on error.
func commit(t testing.TB, s store.Store, fill func(b *store.Batch)) {
	t.Helper()
	if err := tryCommit(s, fill); err != nil {
		t.Fatalf("commit: %v", err)
	}
}

func tryCommit(s store.Store, fill func(b *store.Batch)) error {
	var b store.Batch
	fill(&b)
	return s.Commit(ctx, &b)
}

// session returns a session record with every field set.
func session(id string) *store.Session {
	pf := byte(1)
	return &store.Session{
		ClientID:        id,
		Principal:       "user-" + id,
		ProtocolVersion: 5,
		ExpiryInterval:  3600,
		CreatedAt:       base,
		DisconnectedAt:  base.Add(time.Minute),
		Will: &store.Will{
			DelayInterval: 30,
			Message: store.Message{
				Publisher: id, Topic: "will/" + id, Payload: []byte("gone"), QoS: 1, Retain: true,
				Props: store.Properties{PayloadFormat: &pf, ContentType: "text/plain",
					UserProperties: []store.UserProperty{{Key: "k", Value: "v"}}},
				PublishedAt: base,
			},
		},
	}
}

// message returns a message with id, a topic and payload.
func message(id uint64, payload string) *store.Message {
	pf := byte(0)
	return &store.Message{
		ID: id, Publisher: "pub", Topic: fmt.Sprintf("t/%d", id), Payload: []byte(payload), QoS: 2,
		Props: store.Properties{
			PayloadFormat: &pf, ContentType: "ct", ResponseTopic: "resp", CorrelationData: []byte{1, 2},
			UserProperties: []store.UserProperty{{Key: "a", Value: "b"}, {Key: "a", Value: "c"}},
		},
		PublishedAt: base.Add(time.Duration(id) * time.Millisecond),
		ExpiresAt:   base.Add(time.Hour),
	}
}

// entry returns a queued entry.
func entry(seq, msgID uint64) *store.QueueEntry {
	return &store.QueueEntry{Seq: seq, MessageID: msgID, QoS: 1, SubscriptionIDs: []uint32{7, 300000}}
}

// item is one entry read from a queue with its message.
type item struct {
	E store.QueueEntry
	M store.Message
}

func readQueue(t testing.TB, s store.Store, clientID string, after uint64, limit int) []item {
	t.Helper()
	var out []item
	err := s.ReadQueue(clientID, after, limit, func(e store.QueueEntry, m *store.Message) bool {
		out = append(out, item{normEntry(e), normMessage(*m)})
		return true
	})
	if err != nil {
		t.Fatalf("ReadQueue(%q): %v", clientID, err)
	}
	// ReadQueueEntries reads the same entries, each with its message's size.
	i := 0
	err = s.ReadQueueEntries(clientID, after, limit, func(e store.QueueEntry, size int64) bool {
		if i >= len(out) {
			t.Fatalf("ReadQueueEntries(%q, %d, %d): entry %d (Seq %d) beyond ReadQueue's %d", clientID, after, limit, i, e.Seq, len(out))
		}
		if !reflect.DeepEqual(normEntry(e), out[i].E) || size != out[i].M.Size() {
			t.Fatalf("ReadQueueEntries(%q, %d, %d): entry %d = %+v size %d, ReadQueue read %+v size %d",
				clientID, after, limit, i, e, size, out[i].E, out[i].M.Size())
		}
		i++
		return true
	})
	if err != nil {
		t.Fatalf("ReadQueueEntries(%q): %v", clientID, err)
	}
	if i != len(out) {
		t.Fatalf("ReadQueueEntries(%q, %d, %d): %d entries, ReadQueue %d", clientID, after, limit, i, len(out))
	}
	return out
}

func seqs(items []item) []uint64 {
	var out []uint64
	for _, it := range items {
		out = append(out, it.E.Seq)
	}
	return out
}

// sessions loads every session, checking client ID order.
func sessions(t testing.TB, s store.Store) map[string]*store.SessionState {
	t.Helper()
	out := make(map[string]*store.SessionState)
	last := ""
	err := s.LoadSessions(func(st *store.SessionState) error {
		if len(out) > 0 && st.Session.ClientID <= last {
			return fmt.Errorf("sessions out of order: %q after %q", st.Session.ClientID, last)
		}
		last = st.Session.ClientID
		c := *st // the store may reuse st and its slices (store.Store)
		c.Subscriptions, c.InboundQoS2 = cloneOrNil(st.Subscriptions), cloneOrNil(st.InboundQoS2)
		c.Session = normSession(st.Session)
		out[last] = &c
		return nil
	})
	if err != nil {
		t.Fatalf("LoadSessions: %v", err)
	}
	return out
}

// cloneOrNil copies s; an empty s is nil.
func cloneOrNil[E any](s []E) []E {
	if len(s) == 0 {
		return nil
	}
	return append([]E(nil), s...)
}

func retained(t testing.TB, s store.Store) map[string]store.Message {
	t.Helper()
	out := make(map[string]store.Message)
	if err := s.LoadRetained(func(m *store.Message) error {
		out[m.Topic] = normMessage(*m)
		return nil
	}); err != nil {
		t.Fatalf("LoadRetained: %v", err)
	}
	return out
}

// dump is everything observable in a store.
type dump struct {
	Sessions map[string]*store.SessionState
	Queues   map[string][]item
	Retained map[string]store.Message
	Stats    store.Stats
}

func takeDump(t testing.TB, s store.Store) dump {
	t.Helper()
	d := dump{Sessions: sessions(t, s), Queues: make(map[string][]item), Retained: retained(t, s), Stats: s.Stats()}
	for id := range d.Sessions {
		d.Queues[id] = readQueue(t, s, id, 0, 0)
	}
	return d
}

func checkDump(t testing.TB, what string, got, want dump) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: store changed\n got: %s\nwant: %s", what, show(got), show(want))
	}
}

func show(d dump) string {
	s := fmt.Sprintf("stats=%+v retained=%d", d.Stats, len(d.Retained))
	for id, st := range d.Sessions {
		s += fmt.Sprintf("\n  %q: %+v subs=%v inbound=%v queue=%v", id, st.Queue, st.Subscriptions, st.InboundQoS2, seqs(d.Queues[id]))
	}
	return s
}

func normTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return time.Unix(0, t.UnixNano()).UTC()
}

// normBytes copies b, nil when empty: what the tests keep of a store's
// results owns its memory, so a change made through a result the store
// still shares shows up as a difference.
func normBytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}

// normMessage is a deep copy of m in a comparable form.
func normMessage(m store.Message) store.Message {
	m.Payload = normBytes(m.Payload)
	m.Props.CorrelationData = normBytes(m.Props.CorrelationData)
	if m.Props.PayloadFormat != nil {
		v := *m.Props.PayloadFormat
		m.Props.PayloadFormat = &v
	}
	if len(m.Props.UserProperties) == 0 {
		m.Props.UserProperties = nil
	} else {
		m.Props.UserProperties = append([]store.UserProperty(nil), m.Props.UserProperties...)
	}
	m.PublishedAt, m.ExpiresAt = normTime(m.PublishedAt), normTime(m.ExpiresAt)
	return m
}

func normSession(s store.Session) store.Session {
	s.CreatedAt, s.DisconnectedAt = normTime(s.CreatedAt), normTime(s.DisconnectedAt)
	if s.Will != nil {
		w := *s.Will
		w.Message = normMessage(w.Message)
		s.Will = &w
	}
	return s
}

// normEntry is a deep copy of e in a comparable form.
func normEntry(e store.QueueEntry) store.QueueEntry {
	if len(e.SubscriptionIDs) == 0 {
		e.SubscriptionIDs = nil
	} else {
		e.SubscriptionIDs = append([]uint32(nil), e.SubscriptionIDs...)
	}
	return e
}
