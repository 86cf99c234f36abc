package router

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/bollard-io/bollard/broker/store"
	"github.com/bollard-io/bollard/broker/topic"
)

// Subscriber receives messages; *session.Session implements it.
type Subscriber interface {
	// Online reports whether a connection is attached (shared
	// subscriptions prefer online members).
	Online() bool
	// Offer queues m; store operations go into b.
	Offer(m *store.Message, d Delivery, b *store.Batch) Result
	// Settle reports the commit outcome of an entry Offer returned.
	Settle(seq uint64, ok bool)
	// SettleAll is Settle for several entries with the same outcome.
	SettleAll(seqs []uint64, ok bool)
	// Deliverable lets the subscriber deliver the entry seq, which Offer
	// returned with Early, before its batch commits: the caller has
	// submitted the batch, so every store operation a delivery leads to
	// (a Dequeue, a Sent mark) is submitted after the entry's Enqueue.
	Deliverable(seq uint64)
}

// Router routes published messages to subscribers. It is safe for
// concurrent use; its zero value is not usable, call New.
//
// Each subscription in the trie carries its subscriber, so routing finds
// the subscribers of a topic without a registry keyed by client ID (at a
// million offline sessions such a map cost ~70 bytes each), and a
// publish matched through a subscription reaches the very session that
// made it, never a later session with the same client ID.
type Router struct {
	trie     topic.Trie[entry]
	retained topic.Retained[*store.Message]
	// rmu orders the changes of retained and keeps rbytes, the sum of the
	// retained messages' Size, in step with them (rbytes is atomic so
	// that the store budget reads it on every publish without the lock).
	rmu    sync.Mutex
	rbytes atomic.Int64

	pool sync.Pool // *scratch
	fans sync.Pool // *Fanout, see Fanout.Release
}

// entry is a subscription in the trie: its subscriber and options. The
// filter is the trie's Sub.Filter, not repeated here: a topic.Sub[entry]
// fits 64 bytes (with a store.Subscription, 80).
type entry struct {
	s    Subscriber
	opts options
}

// options are a store.Subscription's options, without its filter.
type options struct {
	id                uint32
	qos               byte
	noLocal, retainAP bool
}

func optionsOf(sub store.Subscription) options {
	return options{id: sub.ID, qos: sub.QoS, noLocal: sub.NoLocal, retainAP: sub.RetainAsPublished}
}

// scratch is the per-Route working memory, reused through Router.pool.
type scratch struct {
	ms  topic.Matches[entry]
	ts  []target
	idx map[string]int // subscriber ID -> index in ts, to merge overlaps
}

// maxScratch bounds the targets a pooled scratch keeps room for, so one
// huge fan-out does not pin its arrays in the pool.
const maxScratch = 4096

// New returns an empty router.
func New() *Router {
	r := &Router{}
	r.pool.New = func() any { return new(scratch) }
	return r
}

// Unregister removes the given subscriptions of id (all of them, when
// filters are the subscriber's filters).
func (r *Router) Unregister(id string, filters []string) {
	r.trie.RemoveAll(id, filters)
}

// Subscribe adds or replaces id's subscription sub, delivering to s.
func (r *Router) Subscribe(id string, s Subscriber, sub store.Subscription) (replaced bool, err error) {
	return r.trie.Add(sub.Filter, id, entry{s: s, opts: optionsOf(sub)})
}

// Unsubscribe removes id's subscription to filter.
func (r *Router) Unsubscribe(id, filter string) bool { return r.trie.Remove(filter, id) }

// Subscriptions returns the number of subscriptions in the trie.
func (r *Router) Subscriptions() int { return r.trie.Count() }

// target is one subscriber's merged delivery.
type target struct {
	id string
	s  Subscriber // nil: not registered
	d  Delivery
}

// Fanout is the result of Route. Settle it exactly once after committing
// the batch.
type Fanout struct {
	// Matched is the number of subscribers offered the message.
	Matched int
	// Stored is the number of queues that stored the message.
	Stored int
	// Rejected: some subscriber's queue refused the message under the
	// RejectPublish policy (5.0 publishers get 0x97 Quota exceeded).
	Rejected bool

	r       *Router
	settles []settle
	early   bool           // some settle is early: AppendEarly skips the settles of a fan-out without
	entries Entries        // the queue entries of the Enqueues
	retain  *store.Message // retained change to apply on success
	unset   bool           // retain change is a deletion
}

type settle struct {
	s     Subscriber
	seq   uint64
	early bool // Offer returned Early: see Deliverable
}

// newFanout returns an empty Fanout, recycled when one was released.
func (r *Router) newFanout() *Fanout {
	if f, ok := r.fans.Get().(*Fanout); ok {
		return f
	}
	return &Fanout{r: r}
}

// Release hands f back to its router for reuse by a later Route or Offer.
// Call it at most once, after Settle, when nothing reads f any more (the
// caller must not keep f or its fields); not calling it is fine. Recycling
// spares a fan-out its Fanout and its settle array, which with many
// offline subscribers is one of the larger allocations per publish, and
// its array of queue entries: call it only after the commit of the batch
// that Route or Offer filled finished (store.Batch: stores keep no record
// of a batch after its commit).
func (f *Fanout) Release() {
	settles := f.settles
	if cap(settles) > maxScratch {
		settles = nil
	} else {
		clear(settles[:cap(settles)]) // Settle and Settlement truncate without clearing
		settles = settles[:0]
	}
	entries := f.entries
	entries.Reset(maxScratch)
	*f = Fanout{r: f.r, settles: settles, entries: entries}
	f.r.fans.Put(f)
}

// Route fans m out to the matching subscribers, appending store operations
// to b: the retained change (if m.Retain), the message once, and every
// queue's operations. storeFull reports that the global store budget is
// reached.
func (r *Router) Route(m *store.Message, storeFull bool, b *store.Batch) *Fanout {
	f := r.newFanout()
	if m.Retain {
		f.retainOps(m, b)
	}
	put := len(b.Ops)
	sc := r.pool.Get().(*scratch)
	defer r.release(sc)
	ts := r.targets(m, sc)
	// One Enqueue per target at most (DropOldest may add Dequeues): grow
	// the batch and the settles once instead of doubling them, and give
	// the stored entries from one array.
	b.Ops = slices.Grow(b.Ops, len(ts)+1)
	b.PutMessage(m)
	f.entries.Reserve(len(ts))
	for i := range ts {
		t := &ts[i]
		if t.s == nil {
			continue
		}
		t.d.StoreFull = storeFull
		t.d.Entries = &f.entries
		res := t.s.Offer(m, t.d, b)
		f.Matched++
		if res.Stored {
			f.Stored++
		}
		f.Rejected = f.Rejected || res.Rejected
		if res.Settle != 0 {
			if len(f.settles) == 0 {
				f.settles = slices.Grow(f.settles, len(ts)-i)
			}
			f.settles = append(f.settles, settle{s: t.s, seq: res.Settle, early: res.Early})
			f.early = f.early || res.Early
		}
	}
	if f.Stored == 0 {
		b.Ops = slices.Delete(b.Ops, put, put+1)
	}
	return f
}

func (f *Fanout) retainOps(m *store.Message, b *store.Batch) {
	if len(m.Payload) == 0 {
		b.DeleteRetained(m.Topic) // [MQTT-3.3.1-6]
		f.retain, f.unset = m, true
		return
	}
	rm := *m
	b.PutRetained(&rm)
	f.retain = &rm
}

// Early is a queue entry that may be delivered before the batch of its
// Enqueue commits (Result.Early): see Deliverable.
type Early struct {
	s   Subscriber
	seq uint64
}

// Deliverable lets the entry's subscriber deliver it. Call it once the
// batch of the entry's fan-out is submitted, as one step with the
// submission as far as other batches go (under the lock that orders
// them), and before the fan-out is settled; not calling it only keeps the
// entry until its commit.
func (e Early) Deliverable() { e.s.Deliverable(e.seq) }

// AppendEarly appends f's entries that may be delivered before the batch
// commits to dst. The caller takes them before it submits the batch (once
// submitted, the commit may settle and release f at any moment) and calls
// their Deliverable after.
func (f *Fanout) AppendEarly(dst []Early) []Early {
	if !f.early {
		return dst
	}
	for _, s := range f.settles {
		if s.early {
			dst = append(dst, Early{s: s.s, seq: s.seq})
		}
	}
	return dst
}

// Settle reports whether the batch of Route committed, settling every
// queue entry and, on success, applying the retained change.
func (f *Fanout) Settle(ok bool) {
	for _, s := range f.settles {
		s.s.Settle(s.seq, ok)
	}
	f.settles = f.settles[:0]
	if ok && f.retain != nil {
		if f.unset {
			f.r.deleteRetained(f.retain.Topic, nil)
		} else {
			f.r.setRetained(f.retain)
		}
	}
}

// targets matches m's topic and merges the subscriptions per subscriber,
// into sc.ts.
func (r *Router) targets(m *store.Message, sc *scratch) []target {
	ms := &sc.ms
	r.trie.Match(m.Topic, ms)
	out := slices.Grow(sc.ts[:0], ms.Len())
	merging := overlapping(ms.Subs)
	if merging && sc.idx == nil {
		sc.idx = make(map[string]int, len(ms.Subs))
	}
	for _, sub := range ms.Subs {
		if sub.Value.opts.noLocal && sub.SubscriberID == m.Publisher {
			continue // [MQTT-3.8.3-3]
		}
		if merging {
			if i, ok := sc.idx[sub.SubscriberID]; ok {
				merge(&out[i].d, m, sub.Value.opts)
				continue
			}
			sc.idx[sub.SubscriberID] = len(out)
		}
		out = append(out, target{id: sub.SubscriberID, s: sub.Value.s, d: delivery(m, sub.Value.opts)})
	}
	for _, g := range ms.Shared {
		if sub, ok := pickShared(g); ok {
			out = append(out, target{id: sub.SubscriberID, s: sub.Value.s, d: delivery(m, sub.Value.opts)})
		}
	}
	sc.ts = out
	return out
}

// overlapping reports whether subs may name a subscriber twice. The trie
// holds one subscription per (subscriber, filter), so subscriptions that
// all matched through the same filter name distinct subscribers.
func overlapping(subs []topic.Sub[entry]) bool {
	for i := 1; i < len(subs); i++ {
		if subs[i].Filter != subs[0].Filter {
			return true
		}
	}
	return false
}

// release returns sc to the pool without the references it held; arrays
// grown by a huge fan-out are dropped rather than kept in the pool.
func (r *Router) release(sc *scratch) {
	sc.ms.Reset()
	if cap(sc.ts) > maxScratch {
		sc.ts = nil
	} else {
		clear(sc.ts)
		sc.ts = sc.ts[:0]
	}
	if len(sc.idx) > maxScratch {
		sc.idx = nil
	} else {
		clear(sc.idx)
	}
	r.pool.Put(sc)
}

// pickShared chooses an online member of a shared group if there is one,
// otherwise any member (an offline persistent member queues the message).
func pickShared(g topic.SharedMatch[entry]) (topic.Sub[entry], bool) {
	sub, ok := g.Pick(func(s topic.Sub[entry]) bool {
		return s.Value.s != nil && s.Value.s.Online()
	})
	if ok {
		return sub, true
	}
	return g.Pick(nil)
}

func delivery(m *store.Message, o options) Delivery {
	d := Delivery{QoS: min(m.QoS, o.qos), Retain: o.retainAP && m.Retain}
	if o.id != 0 {
		d.SubscriptionIDs = []uint32{o.id}
	}
	return d
}

func merge(d *Delivery, m *store.Message, o options) {
	d.QoS = max(d.QoS, min(m.QoS, o.qos))
	d.Retain = d.Retain || (o.retainAP && m.Retain)
	if o.id != 0 {
		d.SubscriptionIDs = append(d.SubscriptionIDs, o.id)
	}
}

// LoadRetained adds a recovered retained message to the index.
func (r *Router) LoadRetained(m *store.Message) { r.setRetained(m) }

func (r *Router) setRetained(m *store.Message) {
	r.rmu.Lock()
	defer r.rmu.Unlock()
	delta := m.Size()
	if old, ok := r.retained.Get(m.Topic); ok {
		delta -= old.Size()
	}
	r.retained.Set(m.Topic, m)
	r.rbytes.Add(delta)
}

// deleteRetained removes topic's retained message, only if it is still
// only (when only is not nil), and reports whether it did.
func (r *Router) deleteRetained(topic string, only *store.Message) bool {
	r.rmu.Lock()
	defer r.rmu.Unlock()
	old, ok := r.retained.Get(topic)
	if !ok || (only != nil && old != only) {
		return false
	}
	r.retained.Delete(topic)
	r.rbytes.Add(-old.Size())
	return true
}

// RetainedBytes returns the sum of the retained messages' Size.
func (r *Router) RetainedBytes() int64 { return r.rbytes.Load() }

// RetainRoom reports whether retaining a message of size bytes on topic
// keeps the retained messages within maxCount messages and maxBytes bytes
// (0: no limit). Replacing a topic's retained message needs no room in
// count, only in bytes beyond the message it replaces. It reserves
// nothing: retained publishes in flight at the same moment (bounded by
// the connections' Receive Maximum and the committer's flight budget) may
// each pass it before the first is applied.
func (r *Router) RetainRoom(topic string, size int64, maxCount int, maxBytes int64) bool {
	r.rmu.Lock()
	defer r.rmu.Unlock()
	bytes := r.rbytes.Load() + size
	old, replacing := r.retained.Get(topic)
	if replacing {
		bytes -= old.Size()
	}
	if maxBytes > 0 && bytes > maxBytes && (!replacing || size > old.Size()) {
		return false
	}
	return replacing || maxCount <= 0 || r.retained.Len() < maxCount
}

// RetainedCount returns the number of retained messages.
func (r *Router) RetainedCount() int { return r.retained.Len() }

// Retained returns the retained messages that filter (a non-shared filter)
// matches.
func (r *Router) Retained(filter string) []*store.Message {
	var out []*store.Message
	r.retained.Match(filter, func(_ string, m *store.Message) bool {
		out = append(out, m)
		return true
	})
	return out
}

// DropRetained removes topic's retained message from the index if it is
// still m (an expired retained message found on delivery), and appends its
// deletion to b.
func (r *Router) DropRetained(m *store.Message, b *store.Batch) {
	if r.deleteRetained(m.Topic, m) {
		b.DeleteRetained(m.Topic)
	}
}

// Offer offers m to one subscriber (a retained message on subscription),
// with the same batch rules as Route: the message is put into b only when
// the subscriber stores it. m must carry a fresh message ID.
func (r *Router) Offer(s Subscriber, m *store.Message, d Delivery, b *store.Batch) *Fanout {
	f := r.newFanout()
	f.Matched = 1
	put := len(b.Ops)
	b.PutMessage(m)
	res := s.Offer(m, d, b)
	if res.Stored {
		f.Stored = 1
	} else {
		b.Ops = slices.Delete(b.Ops, put, put+1)
	}
	f.Rejected = res.Rejected
	if res.Settle != 0 {
		f.settles = append(f.settles, settle{s: s, seq: res.Settle})
	}
	return f
}
