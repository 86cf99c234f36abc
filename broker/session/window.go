package session

import "time"

// Byte windows. Limits.WindowBytes bounds two things per session, each on
// its own: the bytes of queued messages held in memory ahead of delivery
// (the head, read ahead from the store), and the bytes of QoS 1/2 messages
// sent on the connection and not yet acknowledged (PUBACK for QoS 1,
// PUBREC for QoS 2: a Released entry no longer holds its message). Both
// windows come on top of the message counts (head window, Receive
// Maximum), and each admits at least one message whatever its size, so a
// message larger than the window is still delivered, alone.

// window is the byte window; <= 0 means no byte bound.
func (s *Session) window() int64 { return s.limits.WindowBytes }

// headFits reports whether a queued message of size bytes may join the
// in-memory head.
func (s *Session) headFits(size int64) bool {
	w := s.window()
	return w <= 0 || len(s.q.head) == 0 || s.q.headBytes+size <= w
}

// needRefill reports whether the head is low enough, in messages and in
// bytes, to be worth reading the next window from the store.
func (s *Session) needRefill() bool {
	q := &s.q
	if len(q.head) == 0 {
		return true
	}
	w := s.window()
	return len(q.head) < s.headCap()/2 && (w <= 0 || q.headBytes < w/2)
}

// readLimit bounds the entries asked of the store in one read so that
// they are expected to fit the room left in the head: the store holds a
// page of that many messages while it reads. The estimate is the queue's
// average message size.
func (s *Session) readLimit(want int) int {
	q := &s.q
	w := s.window()
	if w <= 0 || q.msgs <= 0 || q.bytes <= 0 {
		return want
	}
	avg := max(q.bytes/q.msgs, 1)
	room := w - q.headBytes
	return int(min(int64(want), max(room/avg, 1)))
}

// pushHead appends it to the head.
func (q *queue) pushHead(it *item) {
	q.head = append(q.head, it)
	q.headBytes += it.size
}

// flightFits reports whether it may be sent now without exceeding the
// bytes in flight. QoS 0 and expired entries take no room (they leave the
// queue when their turn comes).
func (s *Session) flightFits(it *item, now time.Time) bool {
	w, q := s.window(), &s.q
	return it.e.QoS == 0 || w <= 0 || q.flightBytes == 0 || q.flightBytes+it.size <= w ||
		(it.m != nil && it.m.Expired(now))
}

// fly counts it as sent and unacknowledged on this connection.
func (q *queue) fly(it *item) {
	if !it.flying {
		it.flying = true
		q.flightBytes += it.size
	}
}

// land stops counting it in flight (acknowledged, or to be resent).
func (q *queue) land(it *item) {
	if it.flying {
		it.flying = false
		q.flightBytes -= it.size
	}
}
