// Package engine is the MQTT engine of the broker: the Server (one broker
// instance over a store), one read loop and one bounded writer goroutine
// per connection, CONNECT handling, authentication, keep alive, session
// takeover, packet dispatch into sessions (broker/session) and the router
// (broker/router), group commit, expiry, the queue policies that give
// each session its limits (policy.go) and the counters and session census
// behind Stats (stats.go, census.go, dropwindow.go).
//
// It knows nothing of the sockets it did not accept and nothing of HTTP:
// the host (broker/host) binds the listeners, terminates TLS and WebSocket,
// and hands each accepted connection to ServeConn as a plain net.Conn.
// Everything the host may use is exported here; the host's Engine
// interface lists it.
//
// # The Server's lifecycle
//
// The host and the tests use only the Server's exported methods, whose
// doc comments state their contracts: New builds it, Start recovers the
// stored state, then ServeConn serves each accepted connection; ApplyConfig
// applies a reloaded configuration; Drain ends it. Ready, Stats, Sessions
// and Session report on it. All methods are safe for concurrent use. See
// locksordering.txt for the lock order inside the package.
//
// # Data path and durability
//
// A PUBLISH goes validate -> route -> store -> deliver -> acknowledge;
// conn.onPublish (publish.go) spells the steps out and the functions of
// each follow it. It is read by the connection's read loop, checked (topic
// alias, topic name, ACL, Receive Maximum) and routed: under Server.seqMu
// the router offers it to every matching session, which assigns queue Seqs
// and appends its store operations to one batch per publish (the message
// is put once), and the batch is handed to the committer. The committer
// applies batches in exactly the order they were submitted, merging
// whatever queued up during the previous commit into one store commit
// (group commit: one fsync for many publishes from many connections); no
// lock is held while a commit runs. When the commit returns, the job's
// onStored runs: queue entries become deliverable and the publisher gets
// its PUBACK/PUBREC (in the order its PUBLISHes arrived; 0x97 Quota
// exceeded when a queue refused it under RejectPublish). When the
// committer is idle, a PUBLISH that came alone is committed inline by the
// publisher's read loop (inlinecommit.go): applied in the same order,
// fsynced, and finished before any job submitted after it, without the
// hand-offs to the committer's goroutines; while publishers overlap, the
// pipeline is used, whose group commit serves them better.
//
// Each connection has one writer goroutine, woken through a channel. It
// writes queued control packets, then pulls deliveries from its session
// while the inflight window
// (the client's Receive Maximum, capped by limits.maxInflight, and
// limits.outboundBufferBytes of unacknowledged QoS 1/2 messages) has room:
// persistent sessions stream their backlog from the store in bounded
// windows, holding at most limits.outboundBufferBytes of it in memory
// (each byte window admits at least one message, whatever its size). QoS 0 messages for an online client wait in a buffer bounded by
// limits.outboundBufferBytes and are dropped (counted as slow_consumer)
// when it is full; QoS 1/2 messages simply wait in the queue. A QoS 2
// PUBLISH is written only after its packet identifier is durable, and a
// PUBREL only after the Released state is, so a restart never delivers a
// QoS 2 message twice.
//
// Waking it costs a goroutine hand-off (often a thread wake-up) per
// packet, most of a round trip when one message is in flight, so the
// goroutine that makes something sendable writes it itself when it can
// without waiting (flushInline, writer.go): after a PUBLISH that came
// alone, the read loop writes its PUBACK before it waits for the network,
// and the publish is written to its one woken clean subscriber by the
// publisher's read loop right after the fan-out.
// Whatever the socket does not take at once, and QoS 2 deliveries that
// wait for a commit, are left to the writer goroutine, which writes them
// before anything else. After a burst of packets, or for several
// subscribers, the writer goroutines are woken instead, so that they
// write in parallel and in fewer writes.
//
// A closing connection gets one second (closeGrace) to flush its last
// packets (a DISCONNECT with its Reason Code); then the socket is closed,
// so a client that stopped reading holds up neither a takeover nor a
// drain. Acknowledgements go out in the order their packets arrived, also
// those that need no commit (conn.inOrder).
//
// Offline sessions expire and delayed wills fire from a deadline heap
// (expiry.go); deadlines are computed from the persisted disconnection time,
// so they hold across restarts. Start recovers sessions as disconnected at
// recovery time and sweeps the expired ones before it returns.
package engine
