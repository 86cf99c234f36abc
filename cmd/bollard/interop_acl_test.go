package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// TestInteropMosquittoACLWildcards is the interoperability case of issue
// 12 with mosquitto's own clients: readwrite # for every user plus one
// deny rule on test/nosubscribe. SUBSCRIBE # and +/+ are granted and do
// not carry test/nosubscribe (published by an anonymous client, whose
// rules allow it); SUBSCRIBE test/nosubscribe is denied. 3.1.1 and 5.0.
func TestInteropMosquittoACLWildcards(t *testing.T) {
	sub, pub := requireTool(t, "mosquitto_sub"), requireTool(t, "mosquitto_pub")
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	users := filepath.Join(dir, "users")
	if err := os.WriteFile(users, []byte("alice:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "bollard.yaml")
	if err := os.WriteFile(cfg, []byte(`listeners:
  mqtt:
    address: 127.0.0.1:0
admin:
  address: 127.0.0.1:0
dataDir: `+filepath.Join(dir, "data")+`
auth:
  allowAnonymous: true
  usersFile: `+users+`
  acl:
  - {user: "*", topic: "#", access: readwrite}
  - {user: "*", topic: test/nosubscribe, access: deny}
  - {user: "", topic: "#", access: readwrite}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	b := startBollard(t, "--config", cfg)
	for _, v := range mqttVersions {
		t.Run(v, func(t *testing.T) {
			id := "acl-sub-" + v
			alice := func(args ...string) []string {
				return append(append(mosqArgs(t, b.mqtt, v, id, true), "-u", "alice", "-P", "pw"), args...)
			}
			runTool(t, 30*time.Second, "", sub, alice("-q", "1", "-t", "#", "-t", "+/+", "-E")...)
			for _, topic := range []string{"test/nosubscribe", "test/ok"} {
				runTool(t, 30*time.Second, "", pub,
					append(mosqArgs(t, b.mqtt, v, "acl-pub-"+v, false), "-q", "1", "-t", topic, "-m", topic)...)
			}
			got := runTool(t, 30*time.Second, "", sub, alice("-q", "1", "-t", "#", "-t", "+/+", "-C", "1", "-W", "20", "-v")...)
			if strings.TrimSpace(got) != "test/ok test/ok" {
				t.Errorf("first message %q, want test/ok only (test/nosubscribe filtered)", got)
			}
			// mosquitto_sub reports the refusal (SUBACK 0x80 / 0x87) on
			// stderr and exits.
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			out, _ := exec.CommandContext(ctx, sub, append(mosqArgs(t, b.mqtt, v, "acl-denied-"+v, false),
				"-u", "alice", "-P", "pw", "-t", "test/nosubscribe", "-E")...).CombinedOutput()
			if !strings.Contains(string(out), "All subscription requests were denied") {
				t.Errorf("SUBSCRIBE test/nosubscribe: output %q; want it denied", out)
			}
		})
	}
}
