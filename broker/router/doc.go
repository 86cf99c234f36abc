// Package router fans a published message out to the sessions whose
// subscriptions match its topic, and keeps the retained messages.
//
// The router knows sessions only through the Subscriber interface (a
// *session.Session is one) and owns the types of that contract (Delivery,
// Result, Entries, in offer.go); broker/session imports them, and a
// depguard rule keeps the router from importing sessions. Each subscription
// in the trie carries its Subscriber (Subscribe), so the router keeps no
// registry of subscribers. Route matches the topic in the subscription
// trie (broker/topic), merges the overlapping subscriptions of one
// subscriber into one delivery (highest QoS, every subscription
// identifier), applies No Local and Retain As Published, picks one member of
// every matching shared subscription group (online members first, round
// robin), offers the message to each target, and collects the store
// operations of the whole fan-out in one batch: the message is put once,
// whatever the number of queues that reference it. The caller commits the
// batch and reports the outcome with Fanout.Settle, which settles every
// queue entry and applies the retained change to the in-memory index. A
// caller that commits many fan-outs at once may settle their queue entries
// first with a Settlement, one call per subscriber; Fanout.Settle then only
// applies the retained change.
//
// The router does no I/O and never commits to the store.
package router
