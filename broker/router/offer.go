package router

import "github.com/bollard-io/bollard/broker/store"

// The offer contract: what Route hands a Subscriber (Delivery, and the
// Entries its Enqueue takes from) and what the Subscriber answers
// (Result). The router owns these types; sessions implement Subscriber
// and import them, so the router knows sessions only through Subscriber.

// Delivery is how a message reaches a subscriber: the options of the
// matching subscription(s).
type Delivery struct {
	// QoS is the delivery QoS: min(published QoS, subscription QoS).
	QoS byte
	// Retain is the retain flag to deliver with.
	Retain bool
	// SubscriptionIDs are the 5.0 identifiers of the matching subscriptions.
	SubscriptionIDs []uint32
	// StoreFull reports that the global store budget is reached.
	StoreFull bool
	// Entries, when set, allocates the entry of the Enqueue (a fan-out
	// shares one for all its targets); nil: the entry is allocated alone.
	Entries *Entries
}

// Entries allocates the queue entries of one fan-out's Enqueue operations
// from one array instead of one allocation each. An entry handed out
// belongs to the batch it went into until that batch's commit finished
// (stores keep no record of a batch after it, see store.Batch); Reset then
// lets the array serve the next fan-out. The zero value allocates each
// entry alone; it is not safe for concurrent use.
type Entries struct {
	want int
	buf  []store.QueueEntry // entries not handed out yet
	all  []store.QueueEntry // the array buf comes from, kept by Reset
}

// Reserve makes the next n entries come from one array, allocated (or
// reused) when the first of them is needed.
func (a *Entries) Reserve(n int) { a.want, a.buf = n, nil }

// Reset makes the array of the entries handed out reusable, unless it has
// room for more than keep entries. Call it only when every batch holding
// them has finished its commit.
func (a *Entries) Reset(keep int) {
	a.want, a.buf = 0, nil
	if cap(a.all) > keep {
		a.all = nil
		return
	}
	clear(a.all[:cap(a.all)]) // drop the subscription ID slices
	a.all = a.all[:0]
}

// Next hands out the next entry: from the reserved array, or allocated
// alone.
func (a *Entries) Next() *store.QueueEntry {
	if a == nil {
		return new(store.QueueEntry)
	}
	if len(a.buf) == 0 {
		if a.want <= 1 {
			return new(store.QueueEntry)
		}
		if cap(a.all) >= a.want {
			a.all = a.all[:a.want]
		} else {
			a.all = make([]store.QueueEntry, a.want)
		}
		a.buf, a.want = a.all, 0
	}
	e := &a.buf[0]
	a.buf = a.buf[1:]
	return e
}

// Result is the outcome of Offer.
type Result struct {
	// Settle is non-zero when the entry waits for its batch to commit: the
	// caller must call Settle(Settle, ok) afterwards.
	Settle uint64
	// Stored: an Enqueue was appended to the batch (the caller must have
	// put the message into it).
	Stored bool
	// Dropped names the reason when the message was not queued.
	Dropped string
	// Rejected: the queue refused the message under RejectPublish (5.0
	// publishers get 0x97 Quota exceeded).
	Rejected bool
	// Early: the entry (Settle) may be delivered before its batch
	// commits, once the caller has submitted the batch and called
	// Subscriber.Deliverable (Fanout.AppendEarly, Early.Deliverable).
	Early bool
}
