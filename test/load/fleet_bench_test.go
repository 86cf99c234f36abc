//go:build loadbench

package load

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestFleetSessions starts a bollard process (built from this checkout)
// on a store holding LOAD_FLEET_SESSIONS (default 1,000,000) offline
// persistent sessions with one subscription each, written by
// WriteFleetStore, and checks the goals of a fleet: start to ready under
// 10 s and an RSS under 1 GB for a million sessions (for other counts: 10
// µs and 1,000 bytes per session over the empty broker's). One session
// is resumed over MQTT to prove the store was recovered, not skipped.
// LOAD_FLEET_BINARY runs that bollard binary instead (an earlier build,
// for before/after figures). LOAD_FLEET_STORE names a directory that keeps
// the written store between runs: written there when it does not exist
// yet (it must then hold LOAD_FLEET_SESSIONS sessions), and copied into
// each run's data directory, so the broker never changes it.
//
//	LOAD_FLEET_SESSIONS=1000000 go test -tags loadbench -run TestFleetSessions -v -timeout 30m ./test/load
func TestFleetSessions(t *testing.T) {
	n := envInt(t, "LOAD_FLEET_SESSIONS", 1_000_000)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	bin := bollardBinary(t, "LOAD_FLEET_BINARY")
	dir := t.TempDir()
	tgt, err := NewBollard(BollardOptions{Binary: bin, Dir: dir, Durability: "sync", MaxInflight: 128})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tgt.Stop(context.Background()) })
	if _, err := tgt.Start(ctx); err != nil { // an empty store: the baseline
		t.Fatal(err)
	}
	rss0 := rssOf(tgt)
	if err := tgt.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	if err := fleetStore(ctx, filepath.Join(dir, "data"), n); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %d sessions in %v", n, time.Since(begin).Round(time.Millisecond))
	ready, err := tgt.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rss := rssOf(tgt)
	heap, herr := tgt.(heapReporter).HeapInUse(ctx)
	fmt.Printf("\nFleet: %s offline sessions, 1 subscription each\n\n| metric | value |\n| --- | --- |\n", withThousands(int64(n)))
	fmt.Printf("| start to ready | %.2f s |\n| RSS (VmRSS) after ready | %.0f MB |\n| empty broker's RSS | %.0f MB |\n",
		ready.Seconds(), float64(rss)/1e6, float64(rss0)/1e6)
	fmt.Printf("| RSS per session | %.0f B |\n| Go heap in use | %.0f MB (%v) |\n\n", float64(rss-rss0)/float64(n), float64(heap)/1e6, herr)
	if err := resumeOne(ctx, tgt.Addr(), FleetClientID(n/2)); err != nil {
		t.Error(err)
	}
	maxReady, maxRSS := 10*time.Second, int64(1_000_000_000)
	if n != 1_000_000 {
		maxReady, maxRSS = time.Second+time.Duration(n)*10*time.Microsecond, rss0+int64(n)*1000
	}
	if ready >= maxReady {
		t.Errorf("start to ready %v, goal < %v", ready, maxReady)
	}
	if rss >= maxRSS {
		t.Errorf("RSS %d MB, goal < %d MB", rss>>20, maxRSS>>20)
	}
}

// fleetStore puts a store of n fleet sessions in data: written there, or
// copied from LOAD_FLEET_STORE (written first when missing).
func fleetStore(ctx context.Context, data string, n int) error {
	keep := os.Getenv("LOAD_FLEET_STORE")
	if keep == "" {
		return WriteFleetStore(data, n)
	}
	if _, err := os.Stat(keep); errors.Is(err, os.ErrNotExist) {
		tmp := keep + ".writing"
		if err := os.RemoveAll(tmp); err != nil {
			return err
		}
		if err := WriteFleetStore(tmp, n); err != nil {
			return err
		}
		if err := os.Rename(tmp, keep); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(data); err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, "cp", "-r", keep, data).CombinedOutput()
	if err != nil {
		return fmt.Errorf("load: copying %s: %w: %s", keep, err, out)
	}
	return nil
}

// resumeOne connects as id and checks its session was recovered.
func resumeOne(ctx context.Context, addr, id string) error {
	c, err := Dial(ctx, addr, ConnOptions{ClientID: id, SessionExpiry: sessionExpiry})
	if err != nil {
		return err
	}
	if !c.SessionPresent {
		return errors.Join(fmt.Errorf("load: %s: session not present after recovery", id), c.Close())
	}
	return c.Disconnect()
}
