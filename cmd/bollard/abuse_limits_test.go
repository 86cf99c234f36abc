package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/bollard-io/bollard/broker/packet"
)

// The resource limit attacks of issue 12, against the real binary: deep
// topics, user property floods, retained floods and session floods, each
// while an honest client publishes and consumes QoS 1. The broker must stay
// up, the honest client keep working, nothing it had acknowledged be lost,
// and the resident set stay under limRSSBound.

// limRSSBound is the most resident memory the broker may reach during the
// attacks (a race-enabled build needs several times more).
func limRSSBound() int64 {
	if raceBuild {
		return 600 << 20
	}
	return 100 << 20
}

// limClient is a raw MQTT client: the attacks send what no library would.
type limClient struct {
	t  *testing.T
	nc net.Conn
	r  *packet.Reader
	v  byte
	mu sync.Mutex // writes
}

func limDial(t *testing.T, addr string, version byte) *limClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	return &limClient{t: t, nc: nc, r: packet.NewReader(bufio.NewReader(nc), version, 0), v: version}
}

func (c *limClient) send(p packet.Packet) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return packet.Write(c.nc, p, c.v)
}

func (c *limClient) recv(d time.Duration) (packet.Packet, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(d))
	return c.r.ReadPacket()
}

// connect sends CONNECT and returns the CONNACK's code.
func (c *limClient) connect(p *packet.Connect) packet.ReasonCode {
	c.t.Helper()
	p.ProtocolVersion = c.v
	if err := c.send(p); err != nil {
		c.t.Fatalf("CONNECT: %v", err)
	}
	ack, err := c.recv(10 * time.Second)
	if err != nil {
		return packet.UnspecifiedError // closed without CONNACK
	}
	ca, ok := ack.(*packet.Connack)
	if !ok {
		c.t.Fatalf("got %T, want CONNACK", ack)
	}
	return ca.ReasonCode
}

// closedWith reads until the broker closes the connection and returns the
// DISCONNECT reason it sent (0xFF: none).
func (c *limClient) closedWith() packet.ReasonCode {
	rc := packet.ReasonCode(0xFF)
	for {
		p, err := c.recv(10 * time.Second)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.t.Fatal("connection not closed")
			}
			return rc
		}
		if d, ok := p.(*packet.Disconnect); ok {
			rc = d.ReasonCode
		}
	}
}

// honest publishes QoS 1 to honest/t and consumes it through a persistent
// subscription, recording what was acknowledged and what arrived.
type honest struct {
	t    *testing.T
	addr string
	stop chan struct{}
	wg   sync.WaitGroup

	conns    []*limClient
	mu       sync.Mutex
	acked    map[int]bool
	received map[int]bool
	errs     []string
}

func startHonest(t *testing.T, addr string) *honest {
	h := &honest{t: t, addr: addr, stop: make(chan struct{}), acked: map[int]bool{}, received: map[int]bool{}}
	sub := limDial(t, addr, packet.V5)
	if rc := sub.connect(&packet.Connect{ClientID: "honest-sub", CleanStart: true,
		Properties: packet.Properties{SessionExpiryInterval: new(uint32(3600))}}); rc != packet.Success {
		t.Fatalf("honest subscriber CONNACK %v", rc)
	}
	if err := sub.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "honest/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	if p, err := sub.recv(10 * time.Second); err != nil || p.Type() != packet.SUBACK {
		t.Fatalf("honest SUBACK: %v %v", p, err)
	}
	pub := limDial(t, addr, packet.V5)
	if rc := pub.connect(&packet.Connect{ClientID: "honest-pub", CleanStart: true}); rc != packet.Success {
		t.Fatalf("honest publisher CONNACK %v", rc)
	}
	h.conns = []*limClient{sub, pub}
	h.wg.Add(2)
	go h.consume(sub)
	go h.publish(pub)
	return h
}

// fail records an error of the honest client, unless finish stopped it.
func (h *honest) fail(format string, args ...any) {
	select {
	case <-h.stop:
		return
	default:
	}
	h.mu.Lock()
	h.errs = append(h.errs, fmt.Sprintf(format, args...))
	h.mu.Unlock()
}

func (h *honest) consume(c *limClient) {
	defer h.wg.Done()
	for {
		p, err := c.recv(30 * time.Second)
		if err != nil {
			h.fail("subscriber: %v", err)
			return
		}
		pub, ok := p.(*packet.Publish)
		if !ok {
			continue
		}
		n, _ := strconv.Atoi(string(pub.Payload))
		h.mu.Lock()
		h.received[n] = true
		h.mu.Unlock()
		if err := c.send(&packet.Puback{PacketID: pub.PacketID}); err != nil {
			h.fail("subscriber PUBACK: %v", err)
			return
		}
	}
}

func (h *honest) publish(c *limClient) {
	defer h.wg.Done()
	for n := 0; ; n++ {
		select {
		case <-h.stop:
			return
		case <-time.After(5 * time.Millisecond):
		}
		pid := uint16(n%60000 + 1)
		if err := c.send(&packet.Publish{QoS: 1, PacketID: pid, Topic: "honest/t", Payload: []byte(strconv.Itoa(n))}); err != nil {
			h.fail("publisher: %v", err)
			return
		}
		p, err := c.recv(10 * time.Second)
		if ack, ok := p.(*packet.Puback); err != nil || !ok || ack.PacketID != pid || ack.ReasonCode != packet.Success {
			h.fail("publisher: PUBACK %v %v", p, err)
			return
		}
		h.mu.Lock()
		h.acked[n] = true
		h.mu.Unlock()
	}
}

// progress returns how many messages were acknowledged and received.
func (h *honest) progress() (acked, received int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.acked), len(h.received)
}

// finish stops publishing and checks that every acknowledged message
// arrived.
func (h *honest) finish() {
	t := h.t
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		h.mu.Lock()
		missing := 0
		for n := range h.acked {
			if !h.received[n] {
				missing++
			}
		}
		h.mu.Unlock()
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("honest client: %d acknowledged messages never delivered", missing)
		}
		time.Sleep(20 * time.Millisecond) // polling, bounded by the deadline
	}
	close(h.stop)
	for _, c := range h.conns {
		_ = c.nc.Close()
	}
	h.wg.Wait()
	if len(h.errs) > 0 {
		t.Fatalf("honest client: %v", h.errs)
	}
}

// rss returns the broker's resident set size from /proc.
func (b *broker) rss() int64 {
	b.t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", b.cmd.Process.Pid))
	if err != nil {
		b.t.Skipf("no /proc: %v", err)
	}
	for line := range strings.SplitSeq(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	b.t.Fatal("no VmRSS in /proc status")
	return 0
}

// refusals reads bollard_limit_refusals_total{limit=...} from /metrics.
func (b *broker) refusals(limit string) float64 {
	b.t.Helper()
	_, body := b.get("/metrics")
	return metricValue(body, `bollard_limit_refusals_total{limit="`+limit+`"}`)
}

// limBroker starts the binary with the limits the attacks meet: the
// defaults, except smaller retained and session caps so that a test
// reaches them quickly, and one user, mallory.
func limBroker(t *testing.T) *broker {
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	users := filepath.Join(dir, "users")
	if err := os.WriteFile(users, []byte("mallory:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "bollard.yaml")
	yaml := fmt.Sprintf(`listeners:
  mqtt:
    address: 127.0.0.1:0
dataDir: %s
auth:
  allowAnonymous: true
  usersFile: %s
sessions:
  maxSessions: 1000
  maxSessionsPerPrincipal: 200
limits:
  maxRetainedMessages: 500
  maxRetainedBytes: 8388608
`, filepath.Join(dir, "data"), users)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return startBollard(t, "--config", cfg)
}

// TestAbuseResourceLimits runs the attacks one after the other against one
// broker, with the honest client running throughout.
func TestAbuseResourceLimits(t *testing.T) {
	skipAbuseIfShort(t)
	b := limBroker(t)
	h := startHonest(t, b.mqtt)
	rss0 := b.rss()
	t.Logf("RSS at start: %.1f MB", float64(rss0)/(1<<20))
	peak := rss0
	step := func(name string, attack func(t *testing.T)) {
		a0, r0 := h.progress()
		start := time.Now()
		t.Run(name, attack)
		// The honest client keeps working: it gets a message through
		// after the attack, whatever the attack's own duration.
		after := time.Now().Add(10 * time.Second)
		for a, _ := h.progress(); a == a0 && time.Now().Before(after); a, _ = h.progress() {
			time.Sleep(10 * time.Millisecond) // polling, bounded by the deadline
		}
		a1, r1 := h.progress()
		rss := b.rss()
		peak = max(peak, rss)
		t.Logf("%s: %v, RSS %.1f MB, honest client %d messages acknowledged and %d received meanwhile",
			name, time.Since(start).Round(time.Millisecond), float64(rss)/(1<<20), a1-a0, r1-r0)
		// (the counts include the wait for the first message after it)
		if rss > limRSSBound() {
			t.Errorf("%s: RSS %d MB over the bound of %d MB", name, rss>>20, limRSSBound()>>20)
		}
		if a1 == a0 {
			t.Errorf("%s: the honest client made no progress", name)
		}
	}
	step("deep topics", func(t *testing.T) { limDeepTopics(t, b) })
	step("user property flood", func(t *testing.T) { limUserProperties(t, b) })
	step("retained flood", func(t *testing.T) { limRetained(t, b) })
	step("session flood", func(t *testing.T) { limSessions(t, b) })
	h.finish()
	acked, received := h.progress()
	t.Logf("peak RSS %.1f MB (bound %d MB); honest client: %d acknowledged, %d received, none lost",
		float64(peak)/(1<<20), limRSSBound()>>20, acked, received)
	for _, l := range []string{"topic", "user_properties", "retained", "sessions", "sessions_per_principal"} {
		t.Logf("bollard_limit_refusals_total{limit=%q} = %v", l, b.refusals(l))
	}
}

// limDeepTopics: 200 subscriptions to, and 200 retained messages on, 64 KB
// topics of 32,768 levels (issue 12: 15 of each took RSS from 17 to 61 MB).
func limDeepTopics(t *testing.T, b *broker) {
	c := limDial(t, b.mqtt, packet.V5)
	if rc := c.connect(&packet.Connect{ClientID: "deep", CleanStart: true,
		Properties: packet.Properties{SessionExpiryInterval: new(uint32(3600))}}); rc != packet.Success {
		t.Fatalf("CONNACK %v", rc)
	}
	const n = 200
	deep := func(i int) string { return strings.Repeat("a/", 32760) + strconv.Itoa(i) } // ~64 KB, 32,761 levels
	for i := range n {
		if err := c.send(&packet.Subscribe{PacketID: uint16(i + 1), Subscriptions: []packet.Subscription{{Filter: deep(i) + "/#", QoS: 1}}}); err != nil {
			t.Fatal(err)
		}
		p, err := c.recv(10 * time.Second)
		sa, ok := p.(*packet.Suback)
		if err != nil || !ok || sa.ReasonCodes[0] != packet.TopicFilterInvalid {
			t.Fatalf("deep SUBSCRIBE %d: %v %v, want SUBACK 0x8F", i, p, err)
		}
	}
	for i := range n {
		if err := c.send(&packet.Publish{QoS: 1, PacketID: uint16(i + 1), Retain: true, Topic: deep(i), Payload: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		p, err := c.recv(10 * time.Second)
		ack, ok := p.(*packet.Puback)
		if err != nil || !ok || ack.ReasonCode != packet.TopicNameInvalid {
			t.Fatalf("deep PUBLISH %d: %v %v, want PUBACK 0x90", i, p, err)
		}
	}
	if got := b.refusals("topic"); got < 2*n {
		t.Fatalf("topic refusals %v, want >= %d", got, 2*n)
	}
}

// limUserProperties: 20 connections each send a 1 MiB PUBLISH of empty
// user properties (issue 12: ~7 MiB of heap each) and are disconnected.
func limUserProperties(t *testing.T, b *broker) {
	p := &packet.Publish{QoS: 1, PacketID: 1, Topic: "flood", Properties: packet.Properties{User: make([]packet.UserProperty, (1<<20-64)/5)}}
	raw, err := packet.Append(nil, p, packet.V5)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	codes := make([]packet.ReasonCode, 20)
	for i := range codes {
		c := limDial(t, b.mqtt, packet.V5)
		if rc := c.connect(&packet.Connect{ClientID: "props-" + strconv.Itoa(i), CleanStart: true}); rc != packet.Success {
			t.Fatalf("CONNACK %v", rc)
		}
		wg.Go(func() {
			_, _ = c.nc.Write(raw) // the broker may close before reading it all
			codes[i] = c.closedWith()
		})
	}
	wg.Wait()
	for i, rc := range codes {
		if rc != packet.PacketTooLarge {
			t.Errorf("connection %d: DISCONNECT %v, want 0x95", i, rc)
		}
	}
	t.Logf("1 MiB PUBLISH of %d empty user properties: 20 connections disconnected with 0x95", len(p.Properties.User))
}

// limRetained: 2,000 retained messages of 1 KiB on distinct topics against
// maxRetainedMessages 500: the rest get 0x97, replacing one still works.
func limRetained(t *testing.T, b *broker) {
	c := limDial(t, b.mqtt, packet.V5)
	if rc := c.connect(&packet.Connect{ClientID: "retainer", CleanStart: true}); rc != packet.Success {
		t.Fatalf("CONNACK %v", rc)
	}
	payload := make([]byte, 1024)
	publish := func(i int, topic string) packet.ReasonCode {
		if err := c.send(&packet.Publish{QoS: 1, PacketID: uint16(i%60000 + 1), Retain: true, Topic: topic, Payload: payload}); err != nil {
			t.Fatal(err)
		}
		p, err := c.recv(10 * time.Second)
		ack, ok := p.(*packet.Puback)
		if err != nil || !ok {
			t.Fatalf("retained PUBLISH %d: %v %v", i, p, err)
		}
		return ack.ReasonCode
	}
	accepted, refused := 0, 0
	for i := range 2000 {
		switch rc := publish(i, "retained/"+strconv.Itoa(i)); rc {
		case packet.Success:
			accepted++
		case packet.QuotaExceeded:
			refused++
		default:
			t.Fatalf("retained PUBLISH %d: %v", i, rc)
		}
	}
	if accepted != 500 || refused != 1500 {
		t.Fatalf("%d retained accepted, %d refused; want 500 and 1500", accepted, refused)
	}
	if rc := publish(2000, "retained/7"); rc != packet.Success {
		t.Fatalf("replacing a retained message at the cap: %v", rc)
	}
	t.Logf("retained flood: %d accepted, %d refused with 0x97", accepted, refused)
}

// limSessions: 1,000 persistent sessions under one username and 1,000
// anonymous ones, against maxSessionsPerPrincipal 200.
func limSessions(t *testing.T, b *broker) {
	for _, who := range []string{"mallory", ""} {
		accepted, refused := 0, 0
		for i := range 1000 {
			c := limDial(t, b.mqtt, packet.V5)
			p := &packet.Connect{ClientID: fmt.Sprintf("flood-%s-%d", who, i), CleanStart: true,
				Properties: packet.Properties{SessionExpiryInterval: new(uint32(3600))}}
			if who != "" {
				p.UsernameFlag, p.Username, p.PasswordFlag, p.Password = true, who, true, []byte("pw")
			}
			switch rc := c.connect(p); rc {
			case packet.Success:
				accepted++
				_ = c.send(&packet.Disconnect{})
			case packet.QuotaExceeded:
				refused++
			default:
				t.Fatalf("session %d of %q: CONNACK %v", i, who, rc)
			}
			_ = c.nc.Close()
		}
		// The honest and earlier attack clients are anonymous too.
		if accepted > 200 || refused < 800 {
			t.Fatalf("sessions of %q: %d accepted, %d refused; want at most 200 accepted", who, accepted, refused)
		}
		t.Logf("session flood as %q: %d accepted, %d refused with 0x97", who, accepted, refused)
	}
}
