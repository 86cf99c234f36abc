package engine

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/broker/router"
	"github.com/bollard-io/bollard/broker/session"
	"github.com/bollard-io/bollard/broker/store"
	"github.com/bollard-io/bollard/broker/store/memstore"
	"github.com/bollard-io/bollard/broker/store/pebblestore"
)

// censusServer is a Server that is never started: tests register sessions
// in it directly.
func censusServer(t testing.TB, topQueues int) *Server {
	t.Helper()
	cfg := testConfig()
	cfg.Queues.MaxQueuedMessages = 100
	cfg.Admin.MetricsTopQueues = topQueues
	s, err := New(cfg, memstore.New())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// addOffline registers an offline persistent session with queued messages
// of size bytes each (their batch is never committed: the census counts
// what the session holds).
func addOffline(s *Server, id string, queued int, size int) {
	rec := store.Session{ClientID: id, ExpiryInterval: 3600, CreatedAt: time.Now()}
	sess := session.New(rec, s.chooseLimits(id, "", nil), s.env())
	var b store.Batch
	for i := range queued {
		m := &store.Message{ID: uint64(i + 1), Topic: "t", Payload: make([]byte, size), QoS: 1}
		sess.Offer(m, router.Delivery{QoS: 1}, &b)
	}
	s.mu.Lock()
	s.addSessionLocked(id, &sessionEntry{sess: sess})
	s.mu.Unlock()
}

func remove(s *Server, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.sessions[id]
	delete(s.sessions, id)
	s.listRemoveLocked(e)
}

func TestCensusCountsAndRanks(t *testing.T) {
	s := censusServer(t, 3)
	addOffline(s, "empty", 0, 0)
	addOffline(s, "small", 2, 10)
	addOffline(s, "big", 50, 10)
	addOffline(s, "mid-a", 10, 10)
	addOffline(s, "mid-b", 10, 20) // same count, more bytes: deeper than mid-a
	addOffline(s, "gone", 99, 10)
	remove(s, "gone")
	st := s.Stats()
	if st.SessionsOffline != 5 || st.SessionsOnline != 0 || st.QueuedMessages != 72 {
		t.Fatalf("offline %d, online %d, queued %d; want 5, 0, 72", st.SessionsOffline, st.SessionsOnline, st.QueuedMessages)
	}
	var ids []string
	for _, q := range st.TopQueues {
		ids = append(ids, fmt.Sprintf("%s:%d", q.ClientID, q.Messages))
	}
	if got, want := fmt.Sprint(ids), "[big:50 mid-b:10 mid-a:10 small:2]"; got != want {
		t.Errorf("top queues %s, want %s (the empty queue is not listed)", got, want)
	}
	if st.FullestQueue != 0.5 || st.CensusAt.IsZero() || st.MetricsTopQueues != 3 {
		t.Errorf("fullest %v (want 0.5: 50 of 100), counted at %v, metricsTopQueues %d", st.FullestQueue, st.CensusAt, st.MetricsTopQueues)
	}
	var sum int64
	for _, q := range st.TopQueues {
		sum += q.Bytes
	}
	if sum != st.QueuedBytes || st.TopQueues[1].Bytes <= st.TopQueues[2].Bytes {
		t.Errorf("bytes: top %d of %d queued, %+v", sum, st.QueuedBytes, st.TopQueues)
	}
}

// TestCensusTopIsBounded: however many sessions queue, the list holds the
// StatusTopQueues deepest (or admin.metricsTopQueues, when larger).
func TestCensusTopIsBounded(t *testing.T) {
	for _, n := range []int{0, 25} {
		s := censusServer(t, n)
		for i := range 60 {
			addOffline(s, fmt.Sprintf("c%02d", i), i+1, 1)
		}
		top := s.Stats().TopQueues
		want := max(n, StatusTopQueues)
		if len(top) != want || top[0].ClientID != "c59" || top[want-1].Messages != int64(60-want+1) {
			t.Errorf("metricsTopQueues %d: %d queues listed, first %+v, last %+v", n, len(top), top[0], top[len(top)-1])
		}
	}
}

func TestCensusListSurvivesRemovals(t *testing.T) {
	s := censusServer(t, 0)
	for i := range 10 {
		addOffline(s, fmt.Sprintf("c%d", i), 1, 1)
	}
	for _, id := range []string{"c0", "c9", "c4", "c5"} {
		remove(s, id)
	}
	s.mu.Lock()
	for i, e := range s.list {
		if e.idx != i || s.sessions[e.sess.ClientID()] != e {
			t.Errorf("list[%d] = %s with idx %d", i, e.sess.ClientID(), e.idx)
		}
	}
	n, m := len(s.list), len(s.sessions)
	s.mu.Unlock()
	if n != 6 || m != 6 {
		t.Fatalf("list %d, map %d; want 6", n, m)
	}
}

// TestCensusCostIsBounded is the cost of /v1/status and /metrics with many
// sessions: requests within censusMaxAge share one walk; the walk
// allocates the same whatever the number of sessions; and it holds
// Server.mu only to copy entries, never while it reads the sessions, so a
// CONNECT (which needs Server.mu) waits for a copy of one chunk, not for
// the walk (a walk that read sessions under Server.mu fails here: the
// caller then waits the whole walk).
func TestCensusCostIsBounded(t *testing.T) {
	many := int64(100_000)
	if testing.Short() {
		many = 20_000 // still about 20 chunks of census work
	}
	s := censusServer(t, 0)
	for i := range many {
		addOffline(s, fmt.Sprintf("s%06d", i), 0, 0)
	}
	addOffline(s, "deep", 3, 1)

	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if st := s.Stats(); st.SessionsOffline != many+1 {
				t.Errorf("offline %d, want %d", st.SessionsOffline, many+1)
			}
		}()
	}
	wg.Wait()
	if w := s.censuses.walks.Load(); w != 1 {
		t.Errorf("50 concurrent Stats: %d walks over %d sessions, want 1", w, many)
	}

	// Allocations: the same for 1,000 and 100,000 sessions.
	small := censusServer(t, 0)
	for i := range 1000 {
		addOffline(small, fmt.Sprintf("s%d", i), 0, 0)
	}
	addOffline(small, "deep", 3, 1)
	_ = small.takeCensus(StatusTopQueues) // sizes the chunk buffer
	_ = s.takeCensus(StatusTopQueues)
	a1 := testing.AllocsPerRun(3, func() { small.takeCensus(StatusTopQueues) })
	a2 := testing.AllocsPerRun(3, func() { s.takeCensus(StatusTopQueues) })
	if a2 > a1 || a2 > 4 {
		t.Errorf("a census allocates %v times with 1,000 sessions, %v with %d", a1, a2, many)
	}

	// Server.mu: the longest wait for it during a walk is a small part of
	// the walk. A wait also counts the time the scheduler kept either
	// goroutine off the CPU, which a loaded machine stretches; the walk
	// copies a chunk under the lock and reads it outside, so one walk of
	// three with a short longest wait shows it (a walk under one lock
	// never has one).
	var longest, walk time.Duration
	for range 3 {
		longest, walk = lockWaitDuringCensus(s)
		if longest <= walk/4 {
			break
		}
	}
	if longest > walk/4 {
		t.Errorf("a walk of %s kept Server.mu from a caller for %s", walk, longest)
	}
	t.Logf("census of %d sessions: %s; longest wait for Server.mu meanwhile: %s", many, walk, longest)
}

// lockWaitDuringCensus takes a census while another goroutine takes and
// releases Server.mu in a loop; it returns that goroutine's longest wait
// and the census's length.
func lockWaitDuringCensus(s *Server) (longest, walk time.Duration) {
	done := make(chan time.Duration)
	go func() {
		start := time.Now()
		s.takeCensus(StatusTopQueues)
		done <- time.Since(start)
	}()
	for walk == 0 {
		start := time.Now()
		s.mu.Lock()
		longest = max(longest, time.Since(start))
		s.mu.Unlock()
		select {
		case walk = <-done:
		default:
		}
	}
	return longest, walk
}

// TestStatsFsyncFromTheStore: Stats reports the durable store's fsync
// timings (and none for the memory store).
func TestStatsFsyncFromTheStore(t *testing.T) {
	st, err := pebblestore.Open(t.TempDir(), pebblestore.Options{Durability: pebblestore.Sync, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var b store.Batch
	b.PutSession(&store.Session{ClientID: "x", ExpiryInterval: 60})
	if err := st.Commit(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	s, err := New(testConfig(), st)
	if err != nil {
		t.Fatal(err)
	}
	got, want := s.Stats().Fsync, st.FsyncLatency()
	if got.Count == 0 || got.Count < want.Count || got.Buckets[store.LatencyBounds[len(store.LatencyBounds)-1]] > got.Count {
		t.Errorf("Stats().Fsync %+v; the store timed %d fsyncs", got, want.Count)
	}
	if h := censusServer(t, 0).Stats().Fsync; h.Buckets != nil || h.Count != 0 {
		t.Errorf("memory store: %+v", h)
	}
}

// TestCensusTopQueuesNameTheirPolicy: a queue among the deepest carries
// the name of the queue policy whose limits its session has.
func TestCensusTopQueuesNameTheirPolicy(t *testing.T) {
	cfg := testConfig()
	limit := int64(20)
	cfg.Queues.Policies = []config.QueuePolicy{{Name: "sensors", ClientID: "sensor-*", MaxQueuedMessages: &limit}}
	s, err := New(cfg, memstore.New())
	if err != nil {
		t.Fatal(err)
	}
	addOffline(s, "sensor-1", 5, 1)
	addOffline(s, "other", 3, 1)
	top := s.Stats().TopQueues
	if len(top) != 2 || top[0].Policy != "sensors" || top[1].Policy != config.DefaultPolicyName {
		t.Errorf("top queues %+v", top)
	}
	if f := s.Stats().FullestQueue; f != 0.25 { // 5 of the policy's 20
		t.Errorf("fullest %v, want 0.25", f)
	}
}
