package engine

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/broker/packet"
	"github.com/bollard-io/bollard/test/poll"
)

// lockedBuffer is a log destination safe for concurrent use.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// lines returns the records logged with msg.
func (l *lockedBuffer) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(l.b.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// Connections that end in error are counted by reason and logged at most
// once every connErrLogEvery per reason; clients that just close are not.
func TestConnectionErrors(t *testing.T) {
	cfg := testConfig()
	cfg.Limits.ConnectTimeout = config.Duration(200 * time.Millisecond)
	var logs lockedBuffer
	b := startBrokerWith(t, cfg, WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
	want := map[string]uint64{}
	wait := func() {
		t.Helper()
		defer func() {
			if t.Failed() {
				t.Logf("counted %v, want %v", b.srv.Stats().ConnectionErrors, want)
			}
		}()
		poll.Wait(t, 10*time.Second, 5*time.Millisecond, "connection errors counted", func() bool {
			got := b.srv.Stats().ConnectionErrors
			for _, r := range connErrReasons {
				if got[r] != want[r] {
					return false
				}
			}
			return len(got) == len(connErrReasons)
		})
	}

	// Not MQTT, ten times: one line now, the rest counted.
	for range 10 {
		c := dialRaw(t, b.addr, packet.V5)
		if _, err := c.nc.Write([]byte("GET / HTTP/1.1\r\nHost: broker\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		c.expectClosed()
	}
	// A PUBLISH first.
	c := dialRaw(t, b.addr, packet.V5)
	c.send(&packet.Publish{Topic: "x"})
	c.expectClosed()
	want[ConnErrConnectInvalid] = 11
	// Open and close: a TCP health check.
	for range 3 {
		_ = dialRaw(t, b.addr, packet.V5).nc.Close()
	}
	// Nothing at all.
	dialRaw(t, b.addr, packet.V5).expectClosed()
	want[ConnErrConnectTimeout] = 1
	// A second CONNECT, after a first.
	c = dialRaw(t, b.addr, packet.V5)
	c.connect(&packet.Connect{ClientID: "twice", CleanStart: true})
	c.send(&packet.Connect{ProtocolVersion: packet.V5, ClientID: "twice", CleanStart: true})
	c.expectClosed()
	want[ConnErrProtocol] = 1
	// Silent past 1.5 x its keep alive.
	c = dialRaw(t, b.addr, packet.V5)
	c.connect(&packet.Connect{ClientID: "quiet", CleanStart: true, KeepAlive: 1})
	if d := c.expectClosed(); d == nil || d.ReasonCode != packet.KeepAliveTimeout {
		t.Fatalf("silent client got %+v", d)
	}
	want[ConnErrKeepAlive] = 1
	wait()

	lines := logs.lines(t, "connection error")
	if len(lines) != 4 {
		t.Fatalf("%d connection error lines, want one per reason (4): %v", len(lines), lines)
	}
	byReason := map[string]map[string]any{}
	for _, l := range lines {
		byReason[l["reason"].(string)] = l
	}
	if l := byReason[ConnErrConnectInvalid]; l["level"] != "WARN" || l["remote"] == nil || !strings.Contains(l["err"].(string), "packet:") {
		t.Errorf("connect_invalid line %v", l)
	}
	if l := byReason[ConnErrProtocol]; l["client"] != "twice" || l["level"] != "WARN" {
		t.Errorf("protocol_error line %v", l)
	}
	if l := byReason[ConnErrKeepAlive]; l["client"] != "quiet" || l["level"] != "INFO" {
		t.Errorf("keep_alive_timeout line %v", l)
	}

	// Past the interval the next one is logged with the count left out.
	b.clock.Advance(connErrLogEvery)
	c = dialRaw(t, b.addr, packet.V5)
	c.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "x"}}})
	c.expectClosed()
	want[ConnErrConnectInvalid]++
	wait()
	lines = logs.lines(t, "connection error")
	last := lines[len(lines)-1]
	if len(lines) != 5 || last["reason"] != ConnErrConnectInvalid || last["unlogged_before"] != float64(10) {
		t.Fatalf("after the interval: %v", last)
	}
}
