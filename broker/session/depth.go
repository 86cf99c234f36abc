package session

// Depth is a session's queue as the server's census counts it (the
// sessions and queues of /v1/status and /metrics).
type Depth struct {
	// Online is true while a client is connected.
	Online bool
	// Messages and Bytes are the queue (inflight entries included), as
	// the queue limits count them.
	Messages, Bytes int64
	// MaxMessages and MaxBytes are the session's queue limits; 0: none.
	MaxMessages, MaxBytes int64
	// Policy names the session's account (its queue policy); "" for none.
	Policy string
}

// Depth returns the session's queue depth and limits. It holds the
// session's lock only to copy them, and allocates nothing: a census reads
// every session.
func (s *Session) Depth() Depth {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Depth{Online: s.online, Messages: s.q.msgs, Bytes: s.q.bytes,
		MaxMessages: s.limits.MaxMessages, MaxBytes: s.limits.MaxBytes, Policy: s.limits.Account.nameOrEmpty()}
}

// Fill is how full the queue is: the larger of Messages/MaxMessages and
// Bytes/MaxBytes, 0 without limits. It may exceed 1 after the limits were
// lowered (a queue keeps what it holds).
func (d Depth) Fill() float64 {
	f := 0.0
	if d.MaxMessages > 0 {
		f = float64(d.Messages) / float64(d.MaxMessages)
	}
	if d.MaxBytes > 0 {
		f = max(f, float64(d.Bytes)/float64(d.MaxBytes))
	}
	return f
}
