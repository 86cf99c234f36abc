package engine

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/broker/packet"
	"github.com/bollard-io/bollard/broker/store/memstore"
	"github.com/bollard-io/bollard/test/logcheck"
	"github.com/bollard-io/bollard/test/poll"
)

// Connections that end in error are counted by reason and logged at most
// once every connErrLogEvery per reason; clients that just close are not.
func TestConnectionErrors(t *testing.T) {
	cfg := testConfig()
	cfg.Limits.ConnectTimeout = config.Duration(200 * time.Millisecond)
	var logs logcheck.Buffer
	b := startBrokerWith(t, cfg, logTo(&logs))
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

	lines := logs.MustRecords(t, "connection error")
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
	lines = logs.MustRecords(t, "connection error")
	last := lines[len(lines)-1]
	if len(lines) != 5 || last["reason"] != ConnErrConnectInvalid || last["unlogged_before"] != float64(10) {
		t.Fatalf("after the interval: %v", last)
	}
}

// A failed login is logged every time; other refusals at most once per
// reason and refusalLogEvery, with the number left out.
func TestRefusalLogLines(t *testing.T) {
	cfg := testConfig()
	cfg.Limits.MaxConnections = 1
	var logs logcheck.Buffer
	b := startBrokerWith(t, cfg, logTo(&logs))
	first := dialRaw(t, b.addr, packet.V5)
	first.connect(&packet.Connect{ClientID: "first", CleanStart: true})
	busy := func() {
		t.Helper()
		c := dialRaw(t, b.addr, packet.V5)
		if ack := c.connect(&packet.Connect{ClientID: "more", CleanStart: true}); ack.ReasonCode != packet.ServerBusy {
			t.Fatalf("CONNECT beyond maxConnections: %v", ack.ReasonCode)
		}
	}
	for range 20 {
		busy()
	}
	b.clock.Advance(refusalLogEvery)
	busy()
	f := false
	anonCfg := testConfig()
	anonCfg.Auth.AllowAnonymous = &f
	closed := startBrokerWith(t, anonCfg, logTo(&logs))
	for range 3 {
		c := dialRaw(t, closed.addr, packet.V5)
		if ack := c.connect(&packet.Connect{ClientID: "anon", CleanStart: true}); ack.ReasonCode != packet.NotAuthorized {
			t.Fatalf("anonymous CONNECT: %v", ack.ReasonCode)
		}
	}
	quotaCfg := testConfig()
	quotaCfg.Sessions.MaxSessions = 1
	quota := startBrokerWith(t, quotaCfg, logTo(&logs))
	dialRaw(t, quota.addr, packet.V5).connect(&packet.Connect{ClientID: "one", CleanStart: true})
	if ack := dialRaw(t, quota.addr, packet.V5).connect(&packet.Connect{ClientID: "two", CleanStart: true}); ack.ReasonCode != packet.QuotaExceeded {
		t.Fatalf("CONNECT beyond maxSessions: %v", ack.ReasonCode)
	}
	var got []string
	for _, l := range logs.MustRecords(t, "connection refused") {
		got = append(got, fmt.Sprintf("%v %v %v %v", l["code"], l["client"], l["unlogged_before"], l["limit"]))
		if r, _ := l["remote"].(string); !strings.HasPrefix(r, "127.0.0.1:") {
			t.Errorf("remote %v", l["remote"])
		}
	}
	want := "[0x89 more 0 connections 0x89 more 19 connections 0x87 anon <nil> <nil> 0x87 anon <nil> <nil> 0x87 anon <nil> <nil> 0x97 two 0 sessions]"
	if fmt.Sprint(got) != want {
		t.Fatalf("connection refused lines %v, want %s", got, want)
	}
	// One line per refusal: the limit's own line is for requests past
	// CONNECT, and each refusal is still counted.
	if lines, _ := logs.Records("limit refused a request"); len(lines) != 0 {
		t.Fatalf("refused CONNECTs also logged as %v", lines)
	}
	if n := b.srv.Stats().Refusals[LimitConnections]; n != 21 {
		t.Errorf("refusals of %s: %d, want 21", LimitConnections, n)
	}
	if n := quota.srv.Stats().Refusals[LimitSessions]; n != 1 {
		t.Errorf("refusals of %s: %d, want 1", LimitSessions, n)
	}
}

// A store that fails every commit fails one per publish: each is counted,
// the first logged at once and then one per storeErrLogEvery with the
// number left out, and each publisher told (PUBACK 0x80).
func TestStoreCommitErrorsLimited(t *testing.T) {
	var logs logcheck.Buffer
	st := newGatedStore(memstore.New())
	b := startBrokerWith(t, nil, logTo(&logs), withStore(st))
	sub := onlinePersistent(t, b, "away", "t", 1)
	sub.send(&packet.Disconnect{})
	sub.expectClosed()
	waitOffline(t, b, "away")
	pub := dialRaw(t, b.addr, packet.V5)
	pub.connect(&packet.Connect{ClientID: "pub", CleanStart: true})
	st.failAll.Store(true)
	publish := func(id uint16) {
		t.Helper()
		pub.send(&packet.Publish{QoS: 1, PacketID: id, Topic: "t", Payload: []byte("x")})
		if a, ok := pub.recv().(*packet.Puback); !ok || a.ReasonCode != packet.UnspecifiedError {
			t.Fatalf("acknowledgement of a publish not stored: %+v", a)
		}
	}
	for i := range 20 {
		publish(uint16(i + 1))
	}
	b.clock.Advance(storeErrLogEvery)
	publish(21)
	if n := b.srv.Stats().StoreCommitErrors; n != 21 {
		t.Fatalf("StoreCommitErrors = %d, want 21", n)
	}
	lines := logs.MustRecords(t, "storing a published message")
	if len(lines) != 2 || lines[0]["unlogged_before"] != float64(0) || lines[1]["unlogged_before"] != float64(19) ||
		lines[1]["level"] != "ERROR" || lines[1]["err"] != errInjected.Error() {
		t.Fatalf("log lines %v", lines)
	}
}

// TestRefusedInvalidConnectOneLine: a CONNECT that fails to decode but is
// answered (a 5.0 one past limits.maxUserProperties gets CONNACK 0x95) is
// logged once, as a connection error naming the answer's code and the
// limit, not also as a refusal; it is counted as both.
func TestRefusedInvalidConnectOneLine(t *testing.T) {
	cfg := testConfig()
	cfg.Limits.MaxUserProperties = 4
	var logs logcheck.Buffer
	b := startBrokerWith(t, cfg, logTo(&logs))
	c := dialRaw(t, b.addr, packet.V5)
	c.send(&packet.Connect{ProtocolVersion: packet.V5, ClientID: "flood", Properties: packet.Properties{User: emptyUserProps(5)}})
	if ack, ok := c.recv().(*packet.Connack); !ok || ack.ReasonCode != packet.PacketTooLarge {
		t.Fatalf("CONNACK %+v, want 0x95", ack)
	}
	c.expectClosed()
	poll.Wait(t, 10*time.Second, 5*time.Millisecond, "the connection error counted", func() bool {
		return b.srv.Stats().ConnectionErrors[ConnErrConnectInvalid] == 1
	})
	if n := b.srv.Stats().Refusals[LimitUserProperties]; n != 1 {
		t.Errorf("refusals[%s] = %d, want 1", LimitUserProperties, n)
	}
	if lines, _ := logs.Records("connection refused"); len(lines) != 0 {
		t.Errorf("also logged as refused: %v", lines)
	}
	lines := logs.MustRecords(t, "connection error")
	if l := lines[0]; len(lines) != 1 || l["reason"] != ConnErrConnectInvalid || l["code"] != "0x95" || l["limit"] != LimitUserProperties ||
		!strings.HasPrefix(fmt.Sprint(l["remote"]), "127.0.0.1:") {
		t.Fatalf("connection error lines %v, want one naming code 0x95 and limit %s", lines, LimitUserProperties)
	}
}

// logTo makes a broker log JSON lines into logs, for tests that read them.
func logTo(logs *logcheck.Buffer) Option {
	return WithLogger(slog.New(slog.NewJSONHandler(logs, nil)))
}
