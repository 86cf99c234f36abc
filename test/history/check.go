package history

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Kind names a violation.
type Kind string

// The kinds of violation; see the package documentation.
const (
	Lost         Kind = "lost"
	Reordered    Kind = "reordered"
	Duplicated   Kind = "duplicated"
	Phantom      Kind = "phantom"
	Mismatched   Kind = "mismatched"
	Unsubscribed Kind = "unsubscribed"
	Malformed    Kind = "malformed"
	SessionLost  Kind = "session-lost"
	Truncated    Kind = "truncated"
)

// Violation is one broken promise, with what it concerns.
type Violation struct {
	Kind       Kind
	Subscriber string // empty when it concerns no subscriber
	Publisher  string
	Seq        uint64
	Detail     string
}

func (v Violation) String() string {
	var b strings.Builder
	b.WriteString(string(v.Kind))
	b.WriteString(":")
	if v.Publisher != "" {
		fmt.Fprintf(&b, " pub-%s/%d", v.Publisher, v.Seq)
	}
	if v.Subscriber != "" {
		fmt.Fprintf(&b, " at %s", v.Subscriber)
	}
	if v.Detail != "" {
		b.WriteString(": ")
		b.WriteString(v.Detail)
	}
	return b.String()
}

// Report is the result of Check: counts, and the violations in the order
// found (deliveries in recorded order, then lost messages in send order,
// then anomalies).
type Report struct {
	Attempts, Acked, Failed, Unknown, Pending int
	// Deliveries counts every delivery recorded (anomalies apart).
	Deliveries int
	// Expected counts the (acknowledged message, subscriber) pairs that
	// must arrive; Received those of them that did.
	Expected, Received int
	// Redelivered counts deliveries of a message the subscriber already
	// had; DupFlagged the deliveries with the DUP flag.
	Redelivered, DupFlagged int
	// UnackedDelivered counts (failed, unknown or pending message,
	// subscriber) pairs that arrived: allowed.
	UnackedDelivered int
	Violations       []Violation
}

// OK reports whether the history kept every promise.
func (r Report) OK() bool { return len(r.Violations) == 0 }

// Count is the number of violations of kind k.
func (r Report) Count(k Kind) int {
	n := 0
	for _, v := range r.Violations {
		if v.Kind == k {
			n++
		}
	}
	return n
}

// Summary is one line of counts.
func (r Report) Summary() string {
	var kinds []string
	for _, k := range []Kind{Lost, Reordered, Duplicated, Phantom, Mismatched, Unsubscribed, Malformed, SessionLost, Truncated} {
		if n := r.Count(k); n > 0 {
			kinds = append(kinds, fmt.Sprintf("%d %s", n, k))
		}
	}
	viol := "no violations"
	if len(kinds) > 0 {
		viol = "violations: " + strings.Join(kinds, ", ")
	}
	return fmt.Sprintf("%d sent (%d acknowledged, %d failed, %d unknown, %d pending), %d delivered, "+
		"%d/%d expected deliveries arrived, %d redelivered (%d with DUP), %d unacknowledged delivered; %s",
		r.Attempts, r.Acked, r.Failed, r.Unknown, r.Pending, r.Deliveries,
		r.Received, r.Expected, r.Redelivered, r.DupFlagged, r.UnackedDelivered, viol)
}

// maxListed is how many violations String lists.
const maxListed = 20

// String is the summary and the first violations.
func (r Report) String() string {
	var b strings.Builder
	b.WriteString(r.Summary())
	for i, v := range r.Violations {
		if i == maxListed {
			fmt.Fprintf(&b, "\n  ... and %d more", len(r.Violations)-maxListed)
			break
		}
		b.WriteString("\n  ")
		b.WriteString(v.String())
	}
	return b.String()
}

// Err is nil for a clean report, else an error that is its String.
func (r Report) Err() error {
	if r.OK() {
		return nil
	}
	return fmt.Errorf("history: %s", r)
}

type pairKey struct {
	sub, pub string
	seq      uint64
}

type orderKey struct{ sub, pub, topic string }

type checker struct {
	h        History
	attempts map[msgKey]*Attempt
	subs     map[string]map[string]Subscription // subscriber -> publisher -> earliest declaration
	seen     map[pairKey]int                    // deliveries per subscriber and message
	high     map[orderKey]uint64                // highest seq first delivered
	rep      Report
}

// Check checks a history; see the package documentation for the rules.
func Check(h History) Report {
	c := &checker{h: h, attempts: map[msgKey]*Attempt{}, subs: map[string]map[string]Subscription{},
		seen: map[pairKey]int{}, high: map[orderKey]uint64{}}
	c.index()
	for _, d := range h.Deliveries {
		c.delivery(d)
	}
	c.lost()
	for _, a := range h.Anomalies {
		detail := a.Detail
		if !a.At.IsZero() {
			detail += " (at " + stamp(a.At) + ")"
		}
		c.violate(Violation{Kind: a.Kind, Subscriber: a.Subscriber, Publisher: a.Publisher, Detail: detail})
	}
	if h.Truncated > 0 {
		c.violate(Violation{Kind: Truncated, Detail: fmt.Sprintf(
			"%d events were not recorded (recorder limit): this check is incomplete", h.Truncated)})
	}
	return c.rep
}

func (c *checker) violate(v Violation) { c.rep.Violations = append(c.rep.Violations, v) }

func (c *checker) index() {
	for i := range c.h.Attempts {
		a := &c.h.Attempts[i]
		c.attempts[msgKey{a.Publisher, a.Seq}] = a
		c.rep.Attempts++
		switch a.Outcome {
		case Acked:
			c.rep.Acked++
		case Failed:
			c.rep.Failed++
		case Unknown:
			c.rep.Unknown++
		default:
			c.rep.Pending++
		}
	}
	for _, s := range c.h.Subscriptions {
		m := c.subs[s.Subscriber]
		if m == nil {
			m = map[string]Subscription{}
			c.subs[s.Subscriber] = m
		}
		for _, p := range s.Publishers {
			if old, ok := m[p]; !ok || s.Since.Before(old.Since) {
				m[p] = s
			}
		}
	}
}

func (c *checker) delivery(d Delivery) {
	c.rep.Deliveries++
	if d.Dup {
		c.rep.DupFlagged++
	}
	a := c.attempts[msgKey{d.Publisher, d.Seq}]
	if a == nil {
		c.violate(Violation{Kind: Phantom, Subscriber: d.Subscriber, Publisher: d.Publisher, Seq: d.Seq,
			Detail: fmt.Sprintf("delivered on %q at %s, never sent", d.Topic, stamp(d.Received))})
		return
	}
	want := a.QoS
	if s, ok := c.subs[d.Subscriber][d.Publisher]; ok {
		want = min(a.QoS, s.QoS)
	} else {
		c.violate(Violation{Kind: Unsubscribed, Subscriber: d.Subscriber, Publisher: d.Publisher, Seq: d.Seq,
			Detail: "delivered to a subscriber not declared to match this publisher"})
	}
	if d.Topic != a.Topic || d.QoS != want {
		c.violate(Violation{Kind: Mismatched, Subscriber: d.Subscriber, Publisher: d.Publisher, Seq: d.Seq,
			Detail: fmt.Sprintf("sent on %q at QoS %d (effective QoS %d), delivered on %q at QoS %d",
				a.Topic, a.QoS, want, d.Topic, d.QoS)})
	}
	k := pairKey{d.Subscriber, d.Publisher, d.Seq}
	c.seen[k]++
	if n := c.seen[k]; n > 1 {
		c.rep.Redelivered++
		if d.QoS != 1 {
			c.violate(Violation{Kind: Duplicated, Subscriber: d.Subscriber, Publisher: d.Publisher, Seq: d.Seq,
				Detail: fmt.Sprintf("delivered %d times at QoS %d (DUP %v)", n, d.QoS, d.Dup)})
		}
		return
	}
	if a.Outcome != Acked {
		c.rep.UnackedDelivered++
	}
	ok := orderKey{d.Subscriber, d.Publisher, d.Topic}
	if hi, had := c.high[ok]; had && d.Seq < hi {
		c.violate(Violation{Kind: Reordered, Subscriber: d.Subscriber, Publisher: d.Publisher, Seq: d.Seq,
			Detail: fmt.Sprintf("first delivered after seq %d on %q", hi, d.Topic)})
		return
	}
	c.high[ok] = d.Seq
}

// lost walks the acknowledged attempts in send order against every
// subscription that expects them.
func (c *checker) lost() {
	subs := make([]string, 0, len(c.subs))
	for s := range c.subs {
		subs = append(subs, s)
	}
	slices.Sort(subs)
	for _, a := range c.h.Attempts {
		if a.Outcome != Acked {
			continue
		}
		for _, sub := range subs {
			s, ok := c.subs[sub][a.Publisher]
			if !ok || a.Sent.Before(s.Since) || min(a.QoS, s.QoS) == 0 {
				continue
			}
			c.rep.Expected++
			if c.seen[pairKey{sub, a.Publisher, a.Seq}] > 0 {
				c.rep.Received++
				continue
			}
			c.violate(Violation{Kind: Lost, Subscriber: sub, Publisher: a.Publisher, Seq: a.Seq,
				Detail: fmt.Sprintf("acknowledged at QoS %d on %q (sent %s, acknowledged %s), never delivered",
					a.QoS, a.Topic, stamp(a.Sent), stamp(a.Settled))})
		}
	}
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format("15:04:05.000")
}
