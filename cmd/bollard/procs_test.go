package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/bollard-io/bollard/test/poll"
)

// The broker runs on one P while idle (procs: auto, the default), on all
// of them once goroutines queue for one (many clients publishing at once),
// and back on one when the load is gone; procs: all keeps all of them, and
// a hot reload switches between the two; /metrics says which
// (bollard_procs) and counts the switches.
func TestProcsFollowTheLoad(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("one CPU: nothing to adapt")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "bollard.yaml")
	write := func(procs string) {
		t.Helper()
		content := fmt.Sprintf("listeners:\n  mqtt:\n    address: 127.0.0.1:0\ndataDir: %s\nprocs: %s\n", filepath.Join(dir, "data"), procs)
		if err := os.WriteFile(path+".tmp", []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			t.Fatal(err)
		}
	}
	write("auto")
	b := startBollard(t, "--config", path)
	waitProcs := func(what string, ok func(float64) bool) {
		t.Helper()
		// Scraped every 250 ms: a scrape costs CPU too, a lot of it in a
		// race build, and the broker counts it as load.
		poll.Wait(t, 30*time.Second, 250*time.Millisecond, what, func() bool { return ok(b.metric("bollard_procs")) })
	}
	one := func(n float64) bool { return n == 1 }
	all := func(n float64) bool { return n > 1 }
	waitProcs("one P when idle", one)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	const clients = 16
	for i := range clients {
		go func() {
			defer func() { done <- struct{}{} }()
			p := &publisher{topic: "load/" + strconv.Itoa(i%4), qos: 1, max: 1 << 30}
			p.run(ctx, b.mqtt, "procs-pub-"+strconv.Itoa(i))
		}()
	}
	waitProcs(fmt.Sprintf("all Ps with %d publishers", clients), all)
	cancel()
	for range clients {
		<-done
	}
	waitProcs("one P once they stopped", one)

	write("all")
	if err := b.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitProcs("all Ps with procs: all", all)
	write("auto")
	if err := b.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitProcs("one P with procs: auto again", one)
	if n := b.metric("bollard_procs_switches_total"); n < 4 {
		t.Fatalf("bollard_procs_switches_total %v, want at least 4", n)
	}
}

// GOMAXPROCS in the environment is the operator's choice: the broker
// leaves it alone.
func TestProcsLeaveGOMAXPROCSAlone(t *testing.T) {
	b := launchEnv(t, []string{"GOMAXPROCS=3"}, withDefaultPorts(nil)...)
	b.waitReady(60 * time.Second)
	time.Sleep(300 * time.Millisecond) // several of the controller's ticks
	if n := b.metric("bollard_procs"); n != 3 {
		t.Fatalf("bollard_procs %v with GOMAXPROCS=3", n)
	}
	if n := b.metric("bollard_procs_switches_total"); n != 0 {
		t.Fatalf("bollard_procs_switches_total %v with GOMAXPROCS=3", n)
	}
}
