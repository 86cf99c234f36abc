package session

import (
	"math"
	"time"

	"github.com/bollard-io/bollard/broker/store"
)

// record is the session's store.Session held compactly: its two times as
// Unix nanoseconds (the store keeps them so too) rather than two
// 24-byte time.Time values, so that a Session fits a smaller size class
// (a broker holds a million offline sessions). A time comes back in UTC,
// without a monotonic reading, as a store recovery gives it.
type record struct {
	ClientID  string
	Principal string
	Will      *store.Will
	created   int64 // CreatedAt in Unix nanoseconds, valid when hasCreated
	disc      int64 // DisconnectedAt in Unix nanoseconds, valid when hasDisc
	// ExpiryInterval and ProtocolVersion are store.Session's.
	ExpiryInterval  uint32
	ProtocolVersion byte
	hasCreated      bool
	hasDisc         bool
}

func compactRecord(r store.Session) record {
	c := record{ClientID: r.ClientID, Principal: r.Principal, Will: r.Will,
		ExpiryInterval: r.ExpiryInterval, ProtocolVersion: r.ProtocolVersion}
	c.created, c.hasCreated = stamp(r.CreatedAt)
	c.disc, c.hasDisc = stamp(r.DisconnectedAt)
	return c
}

// full is the store.Session, with a copy of the will.
func (r *record) full() store.Session {
	s := store.Session{ClientID: r.ClientID, Principal: r.Principal, ProtocolVersion: r.ProtocolVersion,
		ExpiryInterval: r.ExpiryInterval, CreatedAt: unstamp(r.created, r.hasCreated),
		DisconnectedAt: r.disconnectedAt()}
	if r.Will != nil {
		w := *r.Will
		s.Will = &w
	}
	return s
}

func (r *record) disconnectedAt() time.Time { return unstamp(r.disc, r.hasDisc) }

func (r *record) setDisconnectedAt(t time.Time) { r.disc, r.hasDisc = stamp(t) }

// expiresAt is store.Session.ExpiresAt.
func (r *record) expiresAt() time.Time {
	if !r.hasDisc {
		return time.Time{}
	}
	return r.disconnectedAt().Add(time.Duration(r.ExpiryInterval) * time.Second)
}

// stamp is t in Unix nanoseconds (clamped to the years 1678-2262 that
// int64 nanoseconds hold); ok is false for the zero time.
func stamp(t time.Time) (ns int64, ok bool) {
	if t.IsZero() {
		return 0, false
	}
	const maxSec = math.MaxInt64/int64(time.Second) - 1
	switch s := t.Unix(); {
	case s >= maxSec:
		return math.MaxInt64, true
	case s <= -maxSec:
		return math.MinInt64, true
	}
	return t.UnixNano(), true
}

func unstamp(ns int64, ok bool) time.Time {
	if !ok {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}
