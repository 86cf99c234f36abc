package history

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Outcome is what a publisher learnt of an attempt.
type Outcome uint8

const (
	// Pending: no outcome recorded (the run ended first); counts as Unknown.
	Pending Outcome = iota
	// Acked: PUBACK (QoS 1) or PUBCOMP (QoS 2) with a success reason code.
	Acked
	// Failed: the broker refused it with a reason code of 0x80 or more.
	Failed
	// Unknown: no answer (connection lost, timeout) or QoS 0.
	Unknown
)

func (o Outcome) String() string {
	switch o {
	case Pending:
		return "pending"
	case Acked:
		return "acknowledged"
	case Failed:
		return "failed"
	case Unknown:
		return "unknown"
	}
	return fmt.Sprintf("Outcome(%d)", uint8(o))
}

// Attempt is one publish.
type Attempt struct {
	Publisher string
	Seq       uint64
	QoS       byte
	Topic     string
	// Server is the address of the connection it was written on ("" when
	// not recorded): which member of a cluster acknowledged it.
	Server  string
	Sent    time.Time // before the PUBLISH was written
	Outcome Outcome
	Settled time.Time // when the outcome was learnt
	Detail  string    // reason code or error of a Failed or Unknown outcome
}

// Delivery is one PUBLISH a subscriber received, its payload decoded.
type Delivery struct {
	Subscriber string
	Topic      string
	Publisher  string
	Seq        uint64
	QoS        byte
	Dup        bool
	Received   time.Time
}

// Subscription declares that Subscriber's persistent session matches the
// topics of Publishers from Since on, with the granted QoS.
type Subscription struct {
	Subscriber string
	QoS        byte
	Publishers []string
	Since      time.Time
}

// Anomaly is something wrong in itself that a client saw.
type Anomaly struct {
	Kind       Kind
	Subscriber string
	Publisher  string
	Detail     string
	At         time.Time
}

// History is what a Recorder holds: attempts in the order they were sent,
// deliveries in the order they were recorded.
type History struct {
	Attempts      []Attempt
	Deliveries    []Delivery
	Subscriptions []Subscription
	Anomalies     []Anomaly
	// Truncated counts the events dropped at the Recorder's limit.
	Truncated int
}

// DefaultLimit is the most events (attempts, deliveries and anomalies) a
// Recorder keeps unless WithLimit says otherwise: a few hundred MiB.
const DefaultLimit = 5_000_000

// Option configures NewRecorder.
type Option func(*Recorder)

// WithLimit bounds the events a Recorder keeps; past it, Sent returns
// ErrFull and other events are counted in History.Truncated, which Check
// reports as a violation.
func WithLimit(n int) Option { return func(r *Recorder) { r.limit = n } }

// ErrFull is Sent's error once the Recorder's limit is reached.
var ErrFull = errors.New("history: recorder full")

// Recorder collects a History; safe for concurrent use.
type Recorder struct {
	limit int

	mu     sync.Mutex
	h      History
	events int
	index  map[msgKey]int // attempt by publisher and seq
}

type msgKey struct {
	pub string
	seq uint64
}

// NewRecorder returns an empty Recorder.
func NewRecorder(opts ...Option) *Recorder {
	r := &Recorder{limit: DefaultLimit, index: map[msgKey]int{}}
	for _, o := range opts {
		o(r)
	}
	return r
}

// add counts one event; false when the limit is reached (and the event
// is counted as truncated). r.mu is held.
func (r *Recorder) add() bool {
	if r.events >= r.limit {
		r.h.Truncated++
		return false
	}
	r.events++
	return true
}

// Subscribe declares a subscription (see Subscription). Declaring the same
// subscriber and publisher again keeps the earliest declaration.
func (r *Recorder) Subscribe(s Subscription) error {
	switch {
	case s.Subscriber == "":
		return errors.New("history: subscription without a subscriber")
	case s.QoS > 2:
		return fmt.Errorf("history: subscription of %s at QoS %d", s.Subscriber, s.QoS)
	case s.Since.IsZero():
		return fmt.Errorf("history: subscription of %s without a time", s.Subscriber)
	}
	for _, p := range s.Publishers {
		if err := ValidID(p); err != nil {
			return err
		}
	}
	s.Publishers = slices.Clone(s.Publishers)
	r.mu.Lock()
	r.h.Subscriptions = append(r.h.Subscriptions, s)
	r.mu.Unlock()
	return nil
}

// Sent records an attempt before its PUBLISH is written. Its Outcome must
// be Pending; a publisher and sequence number are sent once.
func (r *Recorder) Sent(a Attempt) error {
	if err := ValidID(a.Publisher); err != nil {
		return err
	}
	switch {
	case a.QoS > 2:
		return fmt.Errorf("history: %s/%d: QoS %d", a.Publisher, a.Seq, a.QoS)
	case a.Outcome != Pending:
		return fmt.Errorf("history: %s/%d: sent with outcome %s", a.Publisher, a.Seq, a.Outcome)
	case a.Sent.IsZero():
		return fmt.Errorf("history: %s/%d: no send time", a.Publisher, a.Seq)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	k := msgKey{a.Publisher, a.Seq}
	if _, dup := r.index[k]; dup {
		return fmt.Errorf("history: %s/%d sent twice", a.Publisher, a.Seq)
	}
	if !r.add() {
		return ErrFull
	}
	r.index[k] = len(r.h.Attempts)
	r.h.Attempts = append(r.h.Attempts, a)
	return nil
}

// Settle records the outcome (Acked, Failed or Unknown) of a pending
// attempt.
func (r *Recorder) Settle(pub string, seq uint64, o Outcome, at time.Time, detail string) error {
	if o != Acked && o != Failed && o != Unknown {
		return fmt.Errorf("history: %s/%d settled as %s", pub, seq, o)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	i, ok := r.index[msgKey{pub, seq}]
	if !ok {
		return fmt.Errorf("history: %s/%d settled but never sent", pub, seq)
	}
	a := &r.h.Attempts[i]
	if a.Outcome != Pending {
		return fmt.Errorf("history: %s/%d settled twice (%s, then %s)", pub, seq, a.Outcome, o)
	}
	a.Outcome, a.Settled, a.Detail = o, at, detail
	return nil
}

// Received records a delivery. A payload that does not decode becomes a
// Malformed anomaly.
func (r *Recorder) Received(sub, topic string, payload []byte, qos byte, dup bool, at time.Time) {
	pub, seq, err := Decode(payload)
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.add() {
		return
	}
	if err != nil {
		r.h.Anomalies = append(r.h.Anomalies, Anomaly{Kind: Malformed, Subscriber: sub, At: at,
			Detail: fmt.Sprintf("on %q at QoS %d: %v", topic, qos, err)})
		return
	}
	r.h.Deliveries = append(r.h.Deliveries, Delivery{Subscriber: sub, Topic: topic, Publisher: pub,
		Seq: seq, QoS: qos, Dup: dup, Received: at})
}

// Anomaly records something wrong that a client saw (Kind SessionLost, or
// another of the scenario's own).
func (r *Recorder) Anomaly(a Anomaly) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.add() {
		r.h.Anomalies = append(r.h.Anomalies, a)
	}
}

// History returns a copy of what was recorded so far.
func (r *Recorder) History() History {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := History{
		Attempts:      slices.Clone(r.h.Attempts),
		Deliveries:    slices.Clone(r.h.Deliveries),
		Subscriptions: make([]Subscription, len(r.h.Subscriptions)),
		Anomalies:     slices.Clone(r.h.Anomalies),
		Truncated:     r.h.Truncated,
	}
	for i, s := range r.h.Subscriptions {
		s.Publishers = slices.Clone(s.Publishers)
		h.Subscriptions[i] = s
	}
	return h
}

// Check checks what was recorded so far.
func (r *Recorder) Check() Report { return Check(r.History()) }
