package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/bollard-io/bollard/test/mqtttest"
)

// Crash tests (issue 4): the real binary is killed while publishers are
// publishing to offline persistent sessions; after a restart on the same
// data directory, the subscribers must receive every message whose
// PUBACK (QoS 1) or PUBCOMP (QoS 2) a publisher got, QoS 2 exactly once,
// in publish order per topic.
//
// BOLLARD_CRASH_MESSAGES sets the messages per run (default 10000, 600
// with -short); BOLLARD_CRASH_RUNS the number of SIGKILL runs (default 3).
// Run with -v to see the counts.

const (
	crashQoS1Publishers = 4
	crashQoS2Publishers = 2
	crashSessionExpiry  = 3600
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func crashMessages() int {
	if testing.Short() {
		return envInt("BOLLARD_CRASH_MESSAGES", 600)
	}
	return envInt("BOLLARD_CRASH_MESSAGES", 10000)
}

func TestCrashSIGKILLLosesNoAcknowledgedMessage(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, seed>>1))
	t.Logf("seed %d", seed)
	runs := 3
	if testing.Short() {
		runs = 1 // make test-fast: one kill, at a random point
	}
	for run := range envInt("BOLLARD_CRASH_RUNS", runs) {
		frac := 0.15 + 0.7*rng.Float64() // kill somewhere in the middle of the stream
		t.Run(fmt.Sprintf("run%d", run), func(t *testing.T) {
			crashRun(t, syscall.SIGKILL, frac)
		})
	}
}

func TestCrashSIGTERMLosesNothing(t *testing.T) {
	crashRun(t, syscall.SIGTERM, 0.5)
}

// crashRun is one kill-and-recover cycle.
func crashRun(t *testing.T, sig syscall.Signal, killFrac float64) {
	dataDir := filepath.Join(t.TempDir(), "data")
	b := startBollard(t, "--data-dir", dataDir)
	subscribeOnce(t, b.mqtt, "crash-q1", "crash/q1/#", 1, crashSessionExpiry)
	subscribeOnce(t, b.mqtt, "crash-q2", "crash/q2/#", 2, crashSessionExpiry)

	total := crashMessages()
	pubs := startPublishers(b.mqtt, total)
	killAt := int(float64(total) * killFrac)
	waitUntil(t, 5*time.Minute, fmt.Sprintf("%d acknowledged publishes", killAt), func() bool {
		return pubs.acked() >= killAt || pubs.allStopped()
	})
	ackedAtSignal := pubs.acked()
	code := b.signal(sig, 60*time.Second)
	pubs.wait()
	if sig == syscall.SIGTERM && code != 0 {
		t.Errorf("exit code after SIGTERM = %d", code)
	}
	acked := pubs.ackedByTopic()
	t.Logf("%v after %d acknowledged publishes (of %d planned); acknowledged by the end: %d",
		sig, ackedAtSignal, total, sum(acked))

	b2 := startBollard(t, "--data-dir", dataDir)
	checkQueuedAfterRestart(t, b2, acked)
	q1 := drainSubscriber(t, b2, "crash-q1", acked, "crash/q1/")
	q2 := drainSubscriber(t, b2, "crash-q2", acked, "crash/q2/")
	checkDelivery(t, "QoS 1", q1, acked, "crash/q1/", false)
	checkDelivery(t, "QoS 2", q2, acked, "crash/q2/", true)
	if code := b2.signal(syscall.SIGTERM, 60*time.Second); code != 0 {
		t.Errorf("exit code of the restarted broker = %d", code)
	}
}

// publishers runs the QoS 1 and QoS 2 publishers of a crash run.
type publishers struct {
	list []*publisher
	wg   sync.WaitGroup
}

func startPublishers(addr string, total int) *publishers {
	per := total / (crashQoS1Publishers + crashQoS2Publishers)
	p := &publishers{}
	for i := range crashQoS1Publishers + crashQoS2Publishers {
		qos, kind := byte(1), "q1"
		if i >= crashQoS1Publishers {
			qos, kind = 2, "q2"
		}
		pub := &publisher{topic: fmt.Sprintf("crash/%s/p%d", kind, i), qos: qos, max: per}
		p.list = append(p.list, pub)
		p.wg.Go(func() { pub.run(context.Background(), addr, fmt.Sprintf("crash-pub-%d", i)) })
	}
	return p
}

func (p *publishers) wait() { p.wg.Wait() }

func (p *publishers) acked() int { return sum(p.ackedByTopic()) }

func (p *publishers) ackedByTopic() map[string]int {
	out := map[string]int{}
	for _, pub := range p.list {
		out[pub.topic] = pub.ackedCount()
	}
	return out
}

func (p *publishers) allStopped() bool {
	for _, pub := range p.list {
		pub.mu.Lock()
		stopped := pub.reason != ""
		pub.mu.Unlock()
		if !stopped {
			return false
		}
	}
	return true
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// sessionInfo is the part of /v1/sessions/{id} the crash tests read.
type sessionInfo struct {
	ClientID       string `json:"clientID"`
	Online         bool   `json:"online"`
	QueuedMessages int64  `json:"queuedMessages"`
	Inflight       int    `json:"inflight"`
}

func (b *broker) session(t *testing.T, id string) (sessionInfo, bool) {
	t.Helper()
	code, body := b.get("/v1/sessions/" + id)
	if code == 404 {
		return sessionInfo{}, false
	}
	var s sessionInfo
	if err := json.Unmarshal([]byte(body), &s); code != 200 || err != nil {
		t.Fatalf("/v1/sessions/%s = %d %v %s", id, code, err, body)
	}
	return s, true
}

// waitOffline waits until the broker has ended the session id's
// connection. A client that disconnects (mosquitto_sub -E) returns before
// the broker has read its DISCONNECT: a message published meanwhile still
// goes out on that connection, is in flight, and comes back (DUP) on the
// next one, which a test of what an offline queue keeps must not count on.
func waitOffline(t *testing.T, b *broker, id string) {
	t.Helper()
	waitUntil(t, 10*time.Second, "session "+id+" offline", func() bool {
		s, ok := b.session(t, id)
		return ok && !s.Online
	})
}

// checkQueuedAfterRestart: after recovery, each offline session holds at
// least the acknowledged messages for its topics.
func checkQueuedAfterRestart(t *testing.T, b *broker, acked map[string]int) {
	t.Helper()
	for id, prefix := range map[string]string{"crash-q1": "crash/q1/", "crash-q2": "crash/q2/"} {
		s, ok := b.session(t, id)
		if !ok {
			t.Fatalf("session %s lost in the restart", id)
		}
		want := 0
		for topic, n := range acked {
			if len(topic) > len(prefix) && topic[:len(prefix)] == prefix {
				want += n
			}
		}
		if s.Online || s.QueuedMessages < int64(want) {
			t.Errorf("%s after restart: online %v, %d queued, want at least %d", id, s.Online, s.QueuedMessages, want)
		}
		t.Logf("%s after restart: %d queued (%d acknowledged)", id, s.QueuedMessages, want)
	}
}

// drainSubscriber reconnects a session and receives until it has every
// acknowledged message of its topics and the broker has nothing left
// queued or in flight for it.
func drainSubscriber(t *testing.T, b *broker, id string, acked map[string]int, prefix string) *received {
	t.Helper()
	mine := map[string]int{}
	for topic, n := range acked {
		if len(topic) > len(prefix) && topic[:len(prefix)] == prefix {
			mine[topic] = n
		}
	}
	got := newReceived()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, ack, err := mqtttest.Dial(ctx, b.mqtt, id, false, crashSessionExpiry, got.add)
	if err != nil {
		t.Fatal(err)
	}
	if !ack.SessionPresent {
		t.Errorf("%s: session present = false after restart", id)
	}
	waitUntil(t, 3*time.Minute, id+" received every acknowledged message", func() bool { return got.covers(mine) })
	waitUntil(t, time.Minute, id+" queue and inflight empty", func() bool {
		s, ok := b.session(t, id)
		return ok && s.QueuedMessages == 0 && s.Inflight == 0
	})
	if err := c.Disconnect(&paho.Disconnect{}); err != nil {
		t.Errorf("disconnect %s: %v", id, err)
	}
	return got
}

// checkDelivery verifies completeness, order and (for QoS 2) uniqueness,
// and logs the counts.
func checkDelivery(t *testing.T, what string, r *received, acked map[string]int, prefix string, exactlyOnce bool) {
	t.Helper()
	got := r.snapshot()
	var topics []string
	for topic := range acked {
		if len(topic) > len(prefix) && topic[:len(prefix)] == prefix {
			topics = append(topics, topic)
		}
	}
	sort.Strings(topics)
	totalAcked, totalGot, dups, extra := 0, 0, 0, 0
	for _, topic := range topics {
		seqs := got[topic]
		totalAcked += acked[topic]
		totalGot += len(seqs)
		d, e := checkTopic(t, what, topic, seqs, acked[topic])
		dups, extra = dups+d, extra+e
	}
	t.Logf("%s: acknowledged %d, received %d (unacknowledged but delivered %d, duplicates %d, DUP-flagged %d)",
		what, totalAcked, totalGot, extra, dups, r.dups)
	if exactlyOnce && dups > 0 {
		t.Errorf("%s: %d duplicates", what, dups)
	}
	if len(r.errors) > 0 {
		t.Errorf("%s: %v", what, r.errors)
	}
}

// checkTopic checks one topic's sequence: increasing, containing
// 1..acked; it returns the duplicates and the deliveries beyond acked.
func checkTopic(t *testing.T, what, topic string, seqs []int, acked int) (dups, extra int) {
	t.Helper()
	seen := map[int]bool{}
	last := 0
	for _, s := range seqs {
		if seen[s] {
			dups++
			continue
		}
		if s < last {
			t.Errorf("%s %s: seq %d after %d: order lost", what, topic, s, last)
		}
		seen[s], last = true, s
		if s > acked {
			extra++
		}
	}
	for i := 1; i <= acked; i++ {
		if !seen[i] {
			t.Errorf("%s %s: acknowledged seq %d lost", what, topic, i)
			break
		}
	}
	return dups, extra
}

// TestCrashSessionExpiredWhileDown: a session whose expiry passes while
// the broker is down (killed) is gone after the restart; a session with
// time left survives with its queue.
func TestCrashSessionExpiredWhileDown(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	b := startBollard(t, "--data-dir", dataDir)
	const short = 2 // seconds
	subscribeOnce(t, b.mqtt, "expires-soon", "expiry/#", 1, short)
	disconnected := time.Now()
	subscribeOnce(t, b.mqtt, "stays", "expiry/#", 1, crashSessionExpiry)
	pub := &publisher{topic: "expiry/t", qos: 1, max: 5}
	pub.run(context.Background(), b.mqtt, "expiry-pub")
	if pub.ackedCount() != 5 {
		t.Fatalf("publisher: %d acknowledged (%s)", pub.ackedCount(), pub.reason)
	}
	if _, ok := b.session(t, "expires-soon"); !ok {
		t.Fatal("the short session expired before the kill; the broker was too slow for this test")
	}
	b.signal(syscall.SIGKILL, 30*time.Second)
	// Let the short expiry pass while the broker is down.
	time.Sleep(time.Until(disconnected.Add(short*time.Second + 500*time.Millisecond)))

	b2 := startBollard(t, "--data-dir", dataDir)
	if s, ok := b2.session(t, "expires-soon"); ok {
		t.Errorf("session expired while the broker was down is back: %+v", s)
	}
	s, ok := b2.session(t, "stays")
	if !ok || s.QueuedMessages != 5 {
		t.Errorf("session with time left: %+v %v, want 5 queued", s, ok)
	}
	if code := b2.signal(syscall.SIGTERM, 60*time.Second); code != 0 {
		t.Errorf("exit code = %d", code)
	}
}

// TestCrashMosquittoPersistentSessions: real mosquitto clients, 3.1.1 and
// 5.0. mosquitto_pub exits 0 only after every QoS 1 message is
// acknowledged; the broker is then killed with SIGKILL, restarted on the
// same data directory, and mosquitto_sub resumes its session and gets all
// of them, in order.
func TestCrashMosquittoPersistentSessions(t *testing.T) {
	sub, pub := requireTool(t, "mosquitto_sub"), requireTool(t, "mosquitto_pub")
	dataDir := filepath.Join(t.TempDir(), "data")
	b := startBollard(t, "--data-dir", dataDir)
	const n = 500
	want := map[string][]string{}
	for _, v := range mqttVersions {
		topic := "crash/mosquitto/" + v
		runTool(t, 30*time.Second, "", sub, append(mosqArgs(t, b.mqtt, v, "crash-mosq-"+v, true), "-q", "1", "-t", topic, "-E")...)
		want[v] = numbered(v, n)
		runTool(t, 2*time.Minute, strings.Join(want[v], "\n")+"\n", pub,
			append(mosqArgs(t, b.mqtt, v, "crash-mosq-pub-"+v, false), "-q", "1", "-t", topic, "-l")...)
	}
	b.signal(syscall.SIGKILL, 30*time.Second)

	b2 := startBollard(t, "--data-dir", dataDir)
	for _, v := range mqttVersions {
		got := runTool(t, 2*time.Minute, "", sub,
			append(mosqArgs(t, b2.mqtt, v, "crash-mosq-"+v, true), "-q", "1", "-t", "crash/mosquitto/"+v, "-C", strconv.Itoa(n), "-W", "100")...)
		checkLines(t, got, want[v])
		t.Logf("%s: %d acknowledged before SIGKILL, %d received after restart", v, n, n)
	}
	if code := b2.signal(syscall.SIGTERM, 60*time.Second); code != 0 {
		t.Errorf("exit code = %d", code)
	}
}
