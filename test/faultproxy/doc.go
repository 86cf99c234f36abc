// Package faultproxy injects network faults between local processes: an
// in-process TCP proxy that forwards every connection it accepts to a
// target, and that a test can partition (blackhole or reset), heal, delay
// and make drop new connections; and a Mesh of such proxies, one per
// ordered pair of cluster members, so that node i reaches node j through
// its own link (Mesh.Addr(i, j)) and links can be cut one by one.
//
// It is test infrastructure for Bollard's replication tests and imports
// nothing of Bollard's.
//
// # Loopback only
//
// A proxy listens on, and dials, loopback IP literals only (127.0.0.0/8
// or ::1, e.g. 127.0.0.1:0); New, SetTarget and NewMesh refuse any other
// address, host names included, with an error. The proxy never sends a
// byte off the machine.
//
// # Faults
//
//   - Partition(Blackhole): a network partition as TCP sees it. Existing
//     connections stay open, and new ones are accepted (the listener's
//     kernel completes the handshake) but not forwarded to the target;
//     every byte read from either side is discarded, and so is a FIN
//     (peers notice only through their own timeouts). Bytes that were
//     being written at the instant of the call may still arrive, as
//     packets already on the wire would.
//   - Partition(Reset): every connection is closed with a TCP RST, and
//     new ones are accepted and reset at once (the target never sees
//     them).
//   - Heal: traffic flows again. A connection that lost bytes or a FIN to
//     a blackhole, or that was accepted during one (it has no upstream),
//     is closed on heal: resuming it would hand the peers a stream with a
//     hole in it. A connection that lost nothing (it was idle during the
//     partition) goes on. Peers reconnect as they would after a partition
//     that outlasted their timeouts.
//   - SetDelay(d): a one-way latency added to every chunk in each
//     direction. Each chunk read is stamped with its arrival time plus d
//     and written when that time comes, in order (a later chunk never
//     overtakes an earlier one, also when d shrinks), so throughput is not
//     throttled: many chunks are in flight at once, bounded by
//     WithMaxQueued (default 1 MiB per direction). When the queue is full
//     the proxy stops reading, and TCP flow control pushes back on the
//     sender, so a connection carries at most about MaxQueued/d bytes a
//     second.
//   - SetDropConnections(p): each new connection is reset at once with
//     probability p, drawn from a generator seeded by WithSeed (default
//     seed 1), so a run with the same seed and the same order of
//     connections drops the same ones.
//
// # Limits
//
// Every connection holds two reading and two writing goroutines and at
// most MaxQueued bytes per direction; WithMaxConns (default 1024) bounds
// the open connections (one more is reset and counted as Rejected). Stats
// reports every count, including the high-water mark of queued bytes.
//
// # Lifecycle
//
// Close closes the listener and every connection and returns once every
// goroutine of the proxy has ended (the tests check that none leaks).
// Half-closes are forwarded: when one side shuts its write half, the
// proxy forwards the FIN after the bytes before it and keeps the other
// direction open.
package faultproxy
