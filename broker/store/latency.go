package store

import (
	"sync/atomic"
	"time"
)

// LatencyBounds are the upper bounds, in seconds, of the buckets of every
// latency histogram the broker keeps (store commits, fsyncs): from 100 µs,
// a fast local SSD's fsync, to 2.5 s, a disk that stalls.
var LatencyBounds = [...]float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}

// Latencies counts durations into the LatencyBounds buckets. The zero value
// is ready; it is safe for concurrent use and allocates nothing.
type Latencies struct {
	counts [len(LatencyBounds)]atomic.Uint64 // per bucket, not cumulative
	count  atomic.Uint64
	sumNS  atomic.Int64
}

// Observe counts one duration.
func (l *Latencies) Observe(d time.Duration) {
	s := d.Seconds()
	for i, b := range LatencyBounds {
		if s <= b {
			l.counts[i].Add(1)
			break
		}
	}
	l.count.Add(1)
	l.sumNS.Add(int64(d))
}

// LatencySnapshot is a copy of Latencies in the Prometheus layout.
type LatencySnapshot struct {
	// Cumulative[i] counts the durations at or below LatencyBounds[i].
	Cumulative [len(LatencyBounds)]uint64
	// Count and Sum cover every duration, those above the last bound too.
	Count uint64
	Sum   time.Duration
}

// Snapshot copies the counts. Count is never below the last bucket's
// cumulative count, also while Observe runs concurrently (Prometheus
// requires the +Inf bucket, which is Count, to be the largest).
func (l *Latencies) Snapshot() LatencySnapshot {
	var s LatencySnapshot
	var cum uint64
	for i := range LatencyBounds {
		cum += l.counts[i].Load()
		s.Cumulative[i] = cum
	}
	s.Sum = time.Duration(l.sumNS.Load())
	s.Count = max(l.count.Load(), cum)
	return s
}

// FsyncReporter is implemented by stores that fsync a write-ahead log.
type FsyncReporter interface {
	// FsyncLatency reports how long each fsync of the log took, measured
	// around the system call: in sync durability every acknowledgement
	// waits for one, and shared fsyncs (group commit) are counted once.
	FsyncLatency() LatencySnapshot
}
