package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Interop tests drive the real binary with Debian's mosquitto clients and
// python3-paho-mqtt, as users' devices would.

// mqttVersions are the mosquitto client protocol flags under test.
var mqttVersions = []string{"mqttv311", "mqttv5"}

// runTool runs an external client with a deadline and returns its stdout;
// a failure or timeout fails the test with the client's output.
func runTool(t *testing.T, d time.Duration, stdin string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v (timeout %s)\nstdout: %s\nstderr: %s", filepath.Base(name), strings.Join(args, " "), err, d, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// hostPort splits a bound address for the clients' -h/-p flags.
func hostPort(t *testing.T, addr string) (string, string) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return h, p
}

// mosqArgs are the common mosquitto client flags for addr and version.
func mosqArgs(t *testing.T, addr, version, clientID string, persistent bool) []string {
	t.Helper()
	h, p := hostPort(t, addr)
	args := []string{"-h", h, "-p", p, "-V", version, "-i", clientID}
	if persistent {
		args = append(args, "-c")
		if version == "mqttv5" {
			args = append(args, "-x", "3600") // 5.0: persistence comes from the expiry
		}
	}
	return args
}

// numbered returns "prefix-1" .. "prefix-n", one per line.
func numbered(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + "-" + strconv.Itoa(i+1)
	}
	return out
}

func checkLines(t *testing.T, got string, want []string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(got, "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("received %d messages, want %d:\n%s", len(lines), len(want), got)
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Fatalf("message %d = %q, want %q (order lost?)", i, lines[i], want[i])
		}
	}
}

// TestInteropMosquittoPersistentSession: a mosquitto_sub persistent
// session subscribes at QoS 1 and goes away; mosquitto_pub publishes
// numbered QoS 1 messages; the subscriber comes back with the same client
// ID and receives all of them, in order. Both 3.1.1 and 5.0.
func TestInteropMosquittoPersistentSession(t *testing.T) {
	sub, pub := requireTool(t, "mosquitto_sub"), requireTool(t, "mosquitto_pub")
	b := startBollard(t, "--data-dir", filepath.Join(t.TempDir(), "data"))
	for _, v := range mqttVersions {
		t.Run(v, func(t *testing.T) {
			const n = 200
			topic, id := "interop/persist/"+v, "mosq-sub-"+v
			runTool(t, 30*time.Second, "", sub, append(mosqArgs(t, b.mqtt, v, id, true), "-q", "1", "-t", topic, "-E")...)
			want := numbered(v, n)
			runTool(t, 60*time.Second, strings.Join(want, "\n")+"\n", pub,
				append(mosqArgs(t, b.mqtt, v, "mosq-pub-"+v, false), "-q", "1", "-t", topic, "-l")...)
			got := runTool(t, 60*time.Second, "", sub,
				append(mosqArgs(t, b.mqtt, v, id, true), "-q", "1", "-t", topic, "-C", strconv.Itoa(n), "-W", "50")...)
			checkLines(t, got, want)
		})
	}
	checkTrafficMetrics(t, b, 2*200)
}

// checkTrafficMetrics scrapes /metrics after a test's traffic: at least
// minQoS1 QoS 1 messages in, and acknowledged publishes behind store
// commits in the latency histogram.
func checkTrafficMetrics(t *testing.T, b *broker, minQoS1 int) {
	t.Helper()
	code, body := b.get("/metrics")
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	in := metricValue(body, `bollard_messages_received_total{qos="1"}`)
	commits := metricValue(body, "bollard_store_commit_duration_seconds_count")
	if in < float64(minQoS1) || commits < 1 {
		t.Errorf("/metrics after traffic: %v QoS 1 messages in (want >= %d), %v store commits", in, minQoS1, commits)
	}
}

// metricValue returns the value of the sample line starting with name, or
// -1 when there is none.
func metricValue(body, name string) float64 {
	for line := range strings.SplitSeq(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// TestInteropMosquittoRetained: a retained message reaches a later
// subscriber of either version, and an empty retained publish deletes it.
func TestInteropMosquittoRetained(t *testing.T) {
	sub, pub := requireTool(t, "mosquitto_sub"), requireTool(t, "mosquitto_pub")
	b := startBollard(t, "--durability", "none")
	for _, v := range mqttVersions {
		t.Run(v, func(t *testing.T) {
			topic := "interop/retained/" + v
			runTool(t, 30*time.Second, "", pub, append(mosqArgs(t, b.mqtt, v, "ret-pub-"+v, false), "-q", "1", "-r", "-t", topic, "-m", "kept")...)
			got := runTool(t, 30*time.Second, "", sub, append(mosqArgs(t, b.mqtt, v, "ret-sub-"+v, false), "-t", topic, "-C", "1", "-W", "20")...)
			checkLines(t, got, []string{"kept"})
			runTool(t, 30*time.Second, "", pub, append(mosqArgs(t, b.mqtt, v, "ret-pub-"+v, false), "-q", "1", "-r", "-t", topic, "-n")...)
			// With nothing retained, -W ends the subscriber with an error
			// status after its timeout; a retained message would print.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, _ := exec.CommandContext(ctx, sub, append(mosqArgs(t, b.mqtt, v, "ret-sub2-"+v, false), "-t", topic, "-C", "1", "-W", "2")...).Output()
			if len(out) != 0 {
				t.Errorf("deleted retained message still delivered: %q", out)
			}
		})
	}
}

// pythonPaho returns a Python interpreter that can import paho.mqtt:
// Debian's /usr/bin/python3 first (python3-paho-mqtt installs there), then
// python3 on PATH.
func pythonPaho(t *testing.T) string {
	t.Helper()
	requireExternal(t)
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		p, err := exec.LookPath(py)
		if err != nil {
			continue
		}
		if exec.Command(p, "-c", "import paho.mqtt.client").Run() == nil {
			return p
		}
	}
	missing(t, "no python3 with paho.mqtt (apt-get install python3-paho-mqtt)")
	return ""
}

// pahoScript is a python3-paho-mqtt (1.6, also 2.x) client: it runs one
// scenario against host:port and prints "OK <details>" or exits non-zero.
const pahoScript = `
import sys, time, threading
import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

host, port, scenario, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
transport = "websockets" if scenario.startswith("ws") else "tcp"
proto = mqtt.MQTTv5 if scenario.endswith("v5") else mqtt.MQTTv311
topic = "interop/paho/" + scenario

def new_client(cid, clean):
    kw = dict(client_id=cid, protocol=proto, transport=transport)
    if proto != mqtt.MQTTv5:
        kw["clean_session"] = clean
    try:
        from paho.mqtt.enums import CallbackAPIVersion
        c = mqtt.Client(CallbackAPIVersion.VERSION1, **kw)
    except ImportError:
        c = mqtt.Client(**kw)
    if transport == "websockets":
        c.ws_set_options(path="/mqtt")
    return c

def connect(cid, clean, on_message=None):
    c = new_client(cid, clean)
    done, result = threading.Event(), {}
    def on_connect(cl, ud, flags, rc, props=None):
        result["present"], result["rc"] = flags.get("session present"), rc
        done.set()
    c.on_connect = on_connect
    if on_message:
        c.on_message = on_message
    if proto == mqtt.MQTTv5:
        p = Properties(PacketTypes.CONNECT)
        p.SessionExpiryInterval = 0 if clean else 3600
        c.connect(host, port, keepalive=30, clean_start=clean, properties=p)
    else:
        c.connect(host, port, keepalive=30)
    c.loop_start()
    if not done.wait(20):
        sys.exit("no CONNACK")
    if result["rc"] != 0:
        sys.exit("CONNACK rc=%s" % result["rc"])
    return c, result

def close(c):
    c.disconnect()
    c.loop_stop()

def subscribe(c, qos):
    done = threading.Event()
    c.on_subscribe = lambda *a: done.set()
    c.subscribe(topic, qos)
    if not done.wait(20):
        sys.exit("no SUBACK")

got, cond = [], threading.Condition()
def on_message(cl, ud, msg):
    with cond:
        got.append(msg.payload.decode())
        cond.notify_all()

sid = "paho-sub-" + scenario
close(connect(sid, True)[0])   # start from no session
sub, _ = connect(sid, False)
subscribe(sub, 2)
close(sub)

pub, _ = connect("paho-pub-" + scenario, True)
for i in range(1, n + 1):
    info = pub.publish(topic, "m-%d" % i, qos=2 if i % 2 else 1)
    info.wait_for_publish(20)
    if not info.is_published():
        sys.exit("publish %d not acknowledged" % i)
close(pub)

sub, r = connect(sid, False, on_message)
if not r["present"]:
    sys.exit("session present = %s, want true" % r["present"])
deadline = time.time() + 30
with cond:
    while len(got) < n and time.time() < deadline:
        cond.wait(1)
time.sleep(0.3)  # a duplicate would arrive now
close(sub)
# paho hands a QoS 2 message to on_message only at PUBREL, a round trip
# later than a QoS 1 one: order is checked per QoS, completeness overall.
nums = [int(m.split("-")[1]) for m in got]
if sorted(nums) != list(range(1, n + 1)):
    sys.exit("received %d messages %s..., want 1..%d once each" % (len(nums), nums[:10], n))
for parity, qos in ((1, 2), (0, 1)):
    seq = [x for x in nums if x % 2 == parity]
    if seq != sorted(seq):
        sys.exit("QoS %d messages out of order: %s" % (qos, seq[:20]))
print("OK", scenario, len(got))
`

// TestInteropPythonPaho: python3-paho-mqtt, 3.1.1 and 5.0, over TCP and
// WebSocket: a persistent session gets every QoS 1/2 message published
// while it was away, in order, exactly once, with session present set.
func TestInteropPythonPaho(t *testing.T) {
	py := pythonPaho(t)
	script := filepath.Join(t.TempDir(), "paho_scenario.py")
	if err := os.WriteFile(script, []byte(pahoScript), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "bollard.yaml")
	yaml := fmt.Sprintf("listeners:\n  mqtt:\n    address: 127.0.0.1:0\n  websocket:\n    address: 127.0.0.1:0\n    path: /mqtt\ndataDir: %s\n", filepath.Join(t.TempDir(), "data"))
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	b := startBollard(t, "--config", cfg)
	for _, sc := range []struct{ name, addr string }{
		{"tcp-v311", b.mqtt}, {"tcp-v5", b.mqtt}, {"ws-v311", b.ws}, {"ws-v5", b.ws},
	} {
		t.Run(sc.name, func(t *testing.T) {
			h, p := hostPort(t, sc.addr)
			out := runTool(t, 90*time.Second, "", py, script, h, p, sc.name, "50")
			if !strings.HasPrefix(out, "OK ") {
				t.Errorf("paho: %s", out)
			}
		})
	}
}
