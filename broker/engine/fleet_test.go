package engine

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/broker/store"
	"github.com/bollard-io/bollard/broker/store/pebblestore"
)

// fleetHeapBudget bounds the Go heap one recovered offline session costs
// (its record, its subscription in the trie, the registry, the sweeper
// and the store's per-session state); see docs/architecture.md. It was
// 2,240 bytes before sessions were made compact, 1,030 after, and
// measures about 700-780 now (the budget leaves room for noise). Under the
// race detector, which pads allocations, it measures about 1,050-1,100.
const fleetHeapBudget, fleetHeapBudgetRace = 950, 1400

// TestRecoverFleet recovers many offline persistent sessions, one
// subscription each ("fleet/<id>/cmd"), from a Pebble store and checks the
// heap each costs and that every one routes. BOLLARD_FLEET_SESSIONS sets
// the count (default 20,000); BOLLARD_FLEET_HEAPPROFILE writes the heap
// profile after recovery there, BOLLARD_FLEET_CPUPROFILE the CPU profile
// of opening the store and starting.
func TestRecoverFleet(t *testing.T) {
	n := 20_000
	if v := os.Getenv("BOLLARD_FLEET_SESSIONS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("BOLLARD_FLEET_SESSIONS=%q", v)
		}
	}
	dir := t.TempDir()
	writeFleet(t, dir, n)
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	if path := os.Getenv("BOLLARD_FLEET_CPUPROFILE"); path != "" {
		stop := startCPUProfile(t, path)
		defer stop()
	}
	begin := time.Now()
	st, err := pebblestore.Open(dir, pebblestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	s, err := New(config.Default(), st)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Drain(context.Background()) })
	elapsed := time.Since(begin)
	pprof.StopCPUProfile()
	runtime.GC()
	runtime.ReadMemStats(&m1)
	per := (int64(m1.HeapInuse) - int64(m0.HeapInuse)) / int64(n)
	t.Logf("%d sessions: open and start %v, heap %d MB (%d B/session), sys %d MB",
		n, elapsed.Round(time.Millisecond), (m1.HeapInuse-m0.HeapInuse)>>20, per, m1.Sys>>20)
	if path := os.Getenv("BOLLARD_FLEET_HEAPPROFILE"); path != "" {
		writeHeapProfile(t, path)
	}
	if got := s.router.Subscriptions(); got != n {
		t.Fatalf("%d subscriptions recovered, want %d", got, n)
	}
	for _, i := range []int{0, n / 2, n - 1} {
		id := fmt.Sprintf("device-%07d", i)
		e := s.sessions[id]
		if e == nil || len(e.sess.Subscriptions()) != 1 || e.sess.Subscriptions()[0].Filter != "fleet/"+id+"/cmd" {
			t.Fatalf("%s not recovered with its subscription", id)
		}
	}
	budget := int64(fleetHeapBudget)
	if raceBuild {
		budget = fleetHeapBudgetRace
	}
	if per > budget {
		t.Errorf("an offline session costs %d bytes of heap, over the budget of %d", per, budget)
	}
}

// writeFleet stores n offline 3.1.1 sessions with one subscription each.
func writeFleet(t *testing.T, dir string, n int) {
	st, err := pebblestore.Open(dir, pebblestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i := 0; i < n; {
		b := &store.Batch{NoSync: true}
		for k := 0; k < 1000 && i < n; k, i = k+1, i+1 {
			id := fmt.Sprintf("device-%07d", i)
			b.PutSession(&store.Session{ClientID: id, ProtocolVersion: 4, ExpiryInterval: 3600, CreatedAt: now, DisconnectedAt: now})
			b.PutSubscription(id, &store.Subscription{Filter: "fleet/" + id + "/cmd", QoS: 1})
		}
		if err := st.Commit(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

func writeHeapProfile(t *testing.T, path string) {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		t.Error(err)
	}
	if err := f.Close(); err != nil {
		t.Error(err)
	}
}

// startCPUProfile profiles the CPU into path until the returned func.
func startCPUProfile(t *testing.T, path string) func() {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		t.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			t.Error(err)
		}
	}
}
