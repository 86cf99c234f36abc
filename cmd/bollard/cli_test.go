package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestBinaryVersion(t *testing.T) {
	code, stdout, stderr := runBollard(t, "version")
	if code != 0 || strings.TrimSpace(stdout) != "bollard "+testVersion {
		t.Errorf("bollard version = %d %q %q", code, stdout, stderr)
	}
}

func TestBinaryBadFlags(t *testing.T) {
	cases := map[string]struct {
		args []string
		want string
	}{
		"unknown flag":      {[]string{"--nope"}, "flag provided but not defined: -nope"},
		"bad durability":    {[]string{"--durability", "fast"}, `--durability: must be one of sync, interval, none, got "fast"`},
		"bad log level":     {[]string{"--log-level", "loud"}, "--log-level"},
		"bad listen":        {[]string{"--listen", "nowhere"}, "--listen: must be host:port"},
		"bad admin listen":  {[]string{"--admin-listen", "8080"}, "--admin-listen"},
		"empty data dir":    {[]string{"--data-dir", ""}, "--data-dir"},
		"stray argument":    {[]string{"serve"}, `unexpected argument "serve"`},
		"missing value":     {[]string{"--config"}, "flag needs an argument: -config"},
		"missing file":      {[]string{"--config", "/nonexistent/bollard.yaml"}, "/nonexistent/bollard.yaml"},
		"bool with garbage": {[]string{"--allow-anonymous=maybe"}, "allow-anonymous"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			code, _, stderr := runBollard(t, tc.args...)
			if code == 0 {
				t.Fatalf("exit 0 for %v", tc.args)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr %q does not contain %q", stderr, tc.want)
			}
		})
	}
}

func TestBinaryBadConfigNamesField(t *testing.T) {
	cases := map[string]struct{ yaml, field string }{
		"bad policy":    {"queues:\n  overflowPolicy: DropAll\n", "queues.overflowPolicy"},
		"typo":          {"queues:\n  maxQueuedMesages: 3\n", "maxQueuedMesages"},
		"tls sans cert": {"listeners:\n  tls:\n    address: 127.0.0.1:0\n", "listeners.tls.certFile"},
		"two problems":  {"logLevel: loud\ndrainTimeout: 0s\n", "drainTimeout"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bollard.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			code, _, stderr := runBollard(t, "--config", path)
			if code == 0 || !strings.Contains(stderr, tc.field) || !strings.Contains(stderr, path) {
				t.Errorf("exit %d, stderr %q: want non-zero naming %s and the file", code, stderr, tc.field)
			}
		})
	}
}

// TestBinaryTLSFilesMissing: a TLS listener whose files do not exist stops
// the start with an error naming the field.
func TestBinaryTLSFilesMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bollard.yaml")
	yaml := "listeners:\n  mqtt:\n    address: 127.0.0.1:0\n  tls:\n    address: 127.0.0.1:0\n    certFile: /nonexistent.pem\n    keyFile: /nonexistent-key.pem\nadmin:\n  address: 127.0.0.1:0\ndurability:\n  mode: none\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runBollard(t, "--config", path)
	if code == 0 || !strings.Contains(stderr, "listeners.tls.certFile") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

func TestBinaryStartAndSIGTERM(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	b := startBollard(t, "--data-dir", dataDir)
	start, _ := b.logs.find("starting bollard")
	if start["dataDir"] != dataDir || start["durability"] != "sync" || start["version"] != testVersion {
		t.Errorf("start log = %v", start)
	}
	if code, _ := b.get("/healthz"); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
	if code, _ := b.get("/readyz"); code != 200 {
		t.Errorf("/readyz = %d", code)
	}
	var st map[string]any
	code, body := b.get("/v1/status")
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil {
		t.Fatalf("/v1/status = %d %s", code, body)
	}
	if st["version"] != testVersion || st["ready"] != true || st["configGeneration"] != 0.0 {
		t.Errorf("/v1/status = %v", st)
	}
	if code, body := b.get("/metrics"); code != 200 || !strings.Contains(body, `bollard_build_info{version="`+testVersion+`"} 1`) {
		t.Errorf("/metrics = %d", code)
	}
	if _, err := os.Stat(dataDir); err != nil {
		t.Errorf("data dir not created: %v", err)
	}

	if code := b.signal(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Fatalf("exit code after SIGTERM = %d", code)
	}
	// Readiness went false before anything was torn down.
	_, iShut := b.logs.find("shutdown requested: readiness false, draining")
	_, iClosed := b.logs.find("store closed")
	_, iStopped := b.logs.find("stopped")
	if iShut < 0 || iClosed < iShut || iStopped < iClosed {
		t.Errorf("shutdown log order: shutdown %d, store closed %d, stopped %d", iShut, iClosed, iStopped)
	}
}

// TestBinaryDrainExits: POST /v1/drain turns /readyz 503, stops the MQTT
// listener and then ends the process (exit 0): a drained broker never idles
// with its listeners closed while /healthz answers 200.
func TestBinaryDrainExits(t *testing.T) {
	b := startBollard(t, "--durability", "none")
	resp, err := http.Post("http://"+b.admin+"/v1/drain", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/drain = %d", resp.StatusCode)
	}
	if code := b.wait(30 * time.Second); code != 0 {
		t.Errorf("exit code after drain = %d", code)
	}
	_, iDrain := b.logs.find("drain requested: readiness false, draining, then stopping")
	_, iStopped := b.logs.find("stopped")
	if iDrain < 0 || iStopped < iDrain {
		t.Errorf("drain log order: drain %d, stopped %d", iDrain, iStopped)
	}
	if c, err := net.DialTimeout("tcp", b.mqtt, time.Second); err == nil {
		c.Close()
		t.Error("MQTT listener still accepts after the drain")
	}
	if code, _ := b.get("/healthz"); code == 200 {
		t.Error("/healthz answers 200 after the drain")
	}
}

// TestBinarySIGINT: Ctrl-C stops the broker like SIGTERM.
func TestBinarySIGINT(t *testing.T) {
	b := startBollard(t, "--durability", "none")
	if code := b.signal(syscall.SIGINT, 30*time.Second); code != 0 {
		t.Errorf("exit code = %d", code)
	}
}

// TestBinaryNoArguments: bollard with no arguments listens on
// 127.0.0.1:1883 (admin 127.0.0.1:8080) with its data in ./bollard-data,
// and says so. Those fixed ports may be taken on a shared machine: then the
// error must name the listener and its address.
func TestBinaryNoArguments(t *testing.T) {
	b := launch(t)
	b.waitLog("starting bollard", 30*time.Second)
	start, _ := b.logs.find("starting bollard")
	if want := filepath.Join(b.cmd.Dir, "bollard-data"); start["dataDir"] != want {
		t.Errorf("dataDir = %v, want %s", start["dataDir"], want)
	}
	ready := b.waitLogOrExit("ready", 60*time.Second)
	if ready == nil {
		logs := b.logs.String()
		if strings.Contains(logs, "127.0.0.1:1883") || strings.Contains(logs, "127.0.0.1:8080") {
			t.Skipf("default ports busy on this machine; the error named them")
		}
		t.Fatalf("bollard did not start:\n%s", logs)
	}
	ls, _ := ready["listeners"].(map[string]any)
	if ls["mqtt"] != "127.0.0.1:1883" || ready["admin"] != "127.0.0.1:8080" {
		t.Errorf("ready log = %v", ready)
	}
	if _, err := os.Stat(filepath.Join(b.cmd.Dir, "bollard-data")); err != nil {
		t.Errorf("./bollard-data: %v", err)
	}
	if code := b.signal(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Errorf("exit code = %d", code)
	}
}

// TestBinaryCorruptStore: a data directory that cannot be read back stops
// the broker with a clear message and a non-zero exit, and is left as it
// was (never reset).
func TestBinaryCorruptStore(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	b := startBollard(t, "--data-dir", dataDir)
	if code := b.signal(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Fatalf("first run exit = %d", code)
	}
	entries, err := os.ReadDir(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	var corrupted []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "MANIFEST-") || e.Name() == "CURRENT" {
			p := filepath.Join(dataDir, e.Name())
			if err := os.WriteFile(p, []byte("this is not a pebble manifest\x00\xff"), 0o600); err != nil {
				t.Fatal(err)
			}
			corrupted = append(corrupted, p)
		}
	}
	if len(corrupted) == 0 {
		t.Fatalf("no manifest found in %v", entries)
	}
	code, _, stderr := runBollard(t, "--data-dir", dataDir, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0")
	if code == 0 {
		t.Fatal("bollard started on a corrupt store")
	}
	if !strings.Contains(stderr, "cannot open the store") || !strings.Contains(stderr, dataDir) {
		t.Errorf("unclear error:\n%s", stderr)
	}
	for _, p := range corrupted {
		if b, err := os.ReadFile(p); err != nil || !strings.HasPrefix(string(b), "this is not") {
			t.Errorf("%s was changed (reset?): %v", p, err)
		}
	}
}

// TestBinaryLockedStore: a second broker on the same data directory is
// refused instead of sharing (and corrupting) the store.
func TestBinaryLockedStore(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	startBollard(t, "--data-dir", dataDir)
	code, _, stderr := runBollard(t, "--data-dir", dataDir, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0")
	if code == 0 || !strings.Contains(stderr, "cannot open the store") {
		t.Errorf("second broker on one data dir: exit %d\n%s", code, stderr)
	}
}

// TestBinaryHotReload: a change to the config file is applied without a
// restart and reported on /v1/status; a bad change is reported and the
// old config stays; a restart field is reported as pending.
func TestBinaryHotReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bollard.yaml")
	base := "listeners:\n  mqtt:\n    address: 127.0.0.1:0\nadmin:\n  address: 127.0.0.1:0\ndurability:\n  mode: none\n"
	write := func(extra string) {
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(base+extra), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write("configGeneration: 1\n")
	b := startBollard(t, "--config", path)
	status := func() map[string]any {
		var st map[string]any
		_, body := b.get("/v1/status")
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatalf("/v1/status: %v %s", err, body)
		}
		return st
	}
	if st := status(); st["configGeneration"] != 1.0 || st["pendingRestart"] != false {
		t.Fatalf("initial status = %v", st)
	}
	write("configGeneration: 2\nqueues:\n  maxQueuedMessages: 7\nlogLevel: debug\n")
	waitUntil(t, 15*time.Second, "generation 2 applied", func() bool { return status()["configGeneration"] == 2.0 })

	write("configGeneration: 3\nqueues:\n  overflowPolicy: DropAll\n")
	waitUntil(t, 15*time.Second, "reload error reported", func() bool {
		e, _ := status()["lastReloadError"].(string)
		return strings.Contains(e, "queues.overflowPolicy")
	})
	if st := status(); st["configGeneration"] != 2.0 {
		t.Errorf("a bad file changed the generation: %v", st)
	}

	write("configGeneration: 4\ndrainTimeout: 5s\ndataDir: /elsewhere\n")
	waitUntil(t, 15*time.Second, "generation 4 applied", func() bool { return status()["configGeneration"] == 4.0 })
	st := status()
	if st["pendingRestart"] != true || st["lastReloadError"] != nil {
		t.Errorf("status = %v", st)
	}
	if f, _ := st["pendingRestartFields"].([]any); len(f) != 1 || f[0] != "dataDir" {
		t.Errorf("pendingRestartFields = %v", st["pendingRestartFields"])
	}
	if _, body := b.get("/metrics"); !strings.Contains(body, "bollard_config_pending_restart 1") || !strings.Contains(body, "bollard_config_generation 4") {
		t.Errorf("/metrics does not show the reload")
	}
	if code := b.signal(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Errorf("exit code = %d", code)
	}
}

// TestBinaryDurabilityModes: every mode starts and stops cleanly; queued
// messages survive a restart in sync and interval mode, and nothing does in
// none mode (which writes no data directory).
func TestBinaryDurabilityModes(t *testing.T) {
	for mode, survives := range map[string]bool{"sync": true, "interval": true, "none": false} {
		t.Run(mode, func(t *testing.T) {
			dataDir := filepath.Join(t.TempDir(), "data")
			b := startBollard(t, "--data-dir", dataDir, "--durability", mode)
			subscribeOnce(t, b.mqtt, "durable", "modes/#", 1, crashSessionExpiry)
			pub := &publisher{topic: "modes/t", qos: 1, max: 10}
			pub.run(context.Background(), b.mqtt, "modes-pub")
			if pub.ackedCount() != 10 {
				t.Fatalf("publisher: %d acknowledged (%s)", pub.ackedCount(), pub.reason)
			}
			if code := b.signal(syscall.SIGTERM, 30*time.Second); code != 0 {
				t.Fatalf("exit code = %d", code)
			}
			if _, err := os.Stat(dataDir); (err == nil) != survives {
				t.Errorf("data dir exists = %v in %s mode", err == nil, mode)
			}
			b2 := startBollard(t, "--data-dir", dataDir, "--durability", mode)
			s, ok := b2.session(t, "durable")
			if survives && (!ok || s.QueuedMessages != 10) {
				t.Errorf("after restart: %+v %v, want 10 queued", s, ok)
			}
			if !survives && ok {
				t.Errorf("session survived a restart in none mode: %+v", s)
			}
		})
	}
}

// TestBinaryMemTableFollowsMemoryLimit: the store's memtables are sized
// from limits.memoryLimit at start (a 32nd: 32 MiB at 1 GiB), as Pebble
// itself records in its OPTIONS file, and the start line says so.
func TestBinaryMemTableFollowsMemoryLimit(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	cfg := fmt.Sprintf(`listeners:
  mqtt: {address: "127.0.0.1:0"}
admin: {address: "127.0.0.1:0"}
dataDir: %q
limits: {memoryLimit: 1073741824}
`, data)
	path := filepath.Join(dir, "bollard.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	b := startBollard(t, "--config", path)
	start, _ := b.logs.find("starting bollard")
	if start["memTableBytes"] != float64(32<<20) {
		t.Errorf("starting line: memTableBytes %v, want %d", start["memTableBytes"], 32<<20)
	}
	opts, err := filepath.Glob(filepath.Join(data, "OPTIONS-*"))
	if err != nil || len(opts) == 0 {
		t.Fatalf("no Pebble OPTIONS file in %s: %v", data, err)
	}
	text, err := os.ReadFile(opts[len(opts)-1])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(text), "mem_table_size=33554432\n") {
		t.Fatalf("Pebble's options: %s", text)
	}
}
