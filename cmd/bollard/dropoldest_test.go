package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDropOldestPipelinedBurst is issue 11's reproduction: an offline
// persistent session with maxQueuedMessages 50 under DropOldest, and a
// burst of 80 QoS 1 messages pipelined on one connection (mosquitto_pub -l
// keeps many in flight). The queue must hold the newest 50 (31-80) in
// every durability mode and protocol version; before the fix it kept
// 2-51, because entries whose commit was still pending could not be
// evicted and the new message was dropped instead.
func TestDropOldestPipelinedBurst(t *testing.T) {
	sub, pub := requireTool(t, "mosquitto_sub"), requireTool(t, "mosquitto_pub")
	const total, limit = 80, 50
	for _, mode := range []string{"sync", "interval", "none"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			cfg := filepath.Join(dir, "bollard.yaml")
			body := "queues:\n  maxQueuedMessages: " + strconv.Itoa(limit) + "\n  overflowPolicy: DropOldest\n"
			if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			b := startBollard(t, "--config", cfg, "--listen", "127.0.0.1:0",
				"--data-dir", filepath.Join(dir, "data"), "--durability", mode)
			for _, v := range mqttVersions {
				t.Run(v, func(t *testing.T) {
					topic, id := "burst/"+v, "burst-sub-"+v
					runTool(t, 30*time.Second, "", sub, append(mosqArgs(t, b.mqtt, v, id, true), "-q", "1", "-t", topic, "-E")...)
					waitOffline(t, b, id)
					lines := make([]string, total)
					for i := range lines {
						lines[i] = strconv.Itoa(i + 1)
					}
					runTool(t, 60*time.Second, strings.Join(lines, "\n")+"\n", pub,
						append(mosqArgs(t, b.mqtt, v, "burst-pub-"+v, false), "-q", "1", "-t", topic, "-l")...)
					got := runTool(t, 60*time.Second, "", sub,
						append(mosqArgs(t, b.mqtt, v, id, true), "-q", "1", "-t", topic, "-C", strconv.Itoa(limit), "-W", "20")...)
					checkLines(t, got, lines[total-limit:])
				})
			}
			if _, body := b.get("/metrics"); metricValue(body, `bollard_dropped_messages_total{reason="queue_full"}`) != 2*(total-limit) {
				t.Fatalf("queue_full drops: want %d\n%s", 2*(total-limit), grepLines(body, "dropped"))
			}
		})
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestDropOldestSharedMessages: three offline persistent sessions on one
// topic, at their limit under DropOldest, while a burst goes on. Each
// message is stored once for the three (an m/ record), and DropOldest
// reads each queue's head back from the store, sharing one decoded copy
// of each message between the sessions (pebblestore's message cache).
// Each session must then receive exactly the newest messages, in order,
// with their own payloads, after a restart too.
func TestDropOldestSharedMessages(t *testing.T) {
	sub, pub := requireTool(t, "mosquitto_sub"), requireTool(t, "mosquitto_pub")
	const total, limit = 300, 40
	dir := t.TempDir()
	cfg := filepath.Join(dir, "bollard.yaml")
	body := "queues:\n  maxQueuedMessages: " + strconv.Itoa(limit) + "\n  overflowPolicy: DropOldest\n"
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--config", cfg, "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data"), "--durability", "sync"}
	b := startBollard(t, args...)
	const v = "5"
	ids := []string{"shared-a", "shared-b", "shared-c"}
	for _, id := range ids {
		runTool(t, 30*time.Second, "", sub, append(mosqArgs(t, b.mqtt, v, id, true), "-q", "1", "-t", "fleet/all", "-E")...)
		waitOffline(t, b, id)
	}
	lines := make([]string, total)
	for i := range lines {
		lines[i] = "reading-" + strconv.Itoa(i+1)
	}
	runTool(t, 60*time.Second, strings.Join(lines, "\n")+"\n", pub,
		append(mosqArgs(t, b.mqtt, v, "shared-pub", false), "-q", "1", "-t", "fleet/all", "-l")...)
	// The first session drains before a restart, the others after it.
	got := runTool(t, 60*time.Second, "", sub,
		append(mosqArgs(t, b.mqtt, v, ids[0], true), "-q", "1", "-t", "fleet/all", "-C", strconv.Itoa(limit), "-W", "20")...)
	checkLines(t, got, lines[total-limit:])
	if code := b.signal(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Fatalf("exit code after SIGTERM = %d", code)
	}
	b = startBollard(t, args...)
	for _, id := range ids[1:] {
		got := runTool(t, 60*time.Second, "", sub,
			append(mosqArgs(t, b.mqtt, v, id, true), "-q", "1", "-t", "fleet/all", "-C", strconv.Itoa(limit), "-W", "20")...)
		checkLines(t, got, lines[total-limit:])
	}
}
