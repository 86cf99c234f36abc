package load

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/bollard-io/bollard/test/ports"
)

// startTimeout bounds how long a broker may take to become ready.
const startTimeout = 2 * time.Minute

// pollEvery is the readiness polling period.
const pollEvery = 5 * time.Millisecond

// Target is a broker under test. Start and Stop may be called repeatedly
// (a restart keeps the data directory).
type Target interface {
	// Name is the column heading: "bollard" or "mosquitto".
	Name() string
	// Start launches the broker and returns once it accepts clients,
	// with the time from launch to ready.
	Start(ctx context.Context) (time.Duration, error)
	// Stop stops the broker gracefully (SIGTERM) and waits for it.
	Stop(ctx context.Context) error
	// Addr is the MQTT listener address, valid after Start.
	Addr() string
	// PID is the broker's process ID, 0 for a broker in this process.
	PID() int
	// Fsyncs says whether acknowledged messages are on disk (a note for
	// the report).
	Fsyncs() bool
}

// Memory is a process's resident set from /proc/<pid>/status, in bytes.
type Memory struct {
	RSS  int64 // VmRSS: now
	Peak int64 // VmHWM: the high-water mark since start
}

// ReadMemory reads the resident set of pid.
func ReadMemory(pid int) (Memory, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Memory{}, fmt.Errorf("load: %w", err)
	}
	defer f.Close()
	var m Memory
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch k {
		case "VmRSS":
			m.RSS = parseKB(v)
		case "VmHWM":
			m.Peak = parseKB(v)
		}
	}
	if err := sc.Err(); err != nil {
		return Memory{}, fmt.Errorf("load: reading /proc/%d/status: %w", pid, err)
	}
	return m, nil
}

// parseKB parses "   1234 kB" into bytes; malformed input yields 0.
func parseKB(s string) int64 {
	n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), "kB")), 10, 64)
	if err != nil {
		return 0
	}
	return n << 10
}

// freePort returns a 127.0.0.1 address that was free a moment ago, below
// the ephemeral range (test/ports).
func freePort() (string, error) {
	out, err := ports.Free(1)
	if err != nil {
		return "", fmt.Errorf("load: free port: %w", err)
	}
	return out[0], nil
}

// pollUntil calls ok every pollEvery until it returns true, exited is
// closed (the process died), or the deadline passes.
func pollUntil(ctx context.Context, exited <-chan struct{}, ok func(context.Context) bool) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for !ok(ctx) {
		select {
		case <-exited:
			return errors.New("load: broker exited before it was ready")
		case <-ctx.Done():
			return fmt.Errorf("load: broker not ready: %w", ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}

// mqttReady reports whether a CONNECT to addr gets a successful CONNACK.
func mqttReady(ctx context.Context, addr string) bool {
	c, err := Dial(ctx, addr, ConnOptions{ClientID: "load-ready-probe", CleanStart: true})
	if err != nil {
		return false
	}
	return c.Disconnect() == nil
}
