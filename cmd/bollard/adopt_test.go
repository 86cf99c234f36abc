package main

import (
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/store/pebblestore"
)

// TestAdoptSingleStoreSIGKILL: a single node's data directory, with
// acknowledged messages queued for persistent QoS 1 and QoS 2 sessions,
// is started as the bootstrapping member of a cluster of one; the member
// is killed with SIGKILL while it adopts the store (and at random moments
// after), then started again: every acknowledged message is delivered,
// in order, QoS 2 once. Afterwards a single node refuses the directory.
func TestAdoptSingleStoreSIGKILL(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, seed>>1))
	t.Logf("seed %d", seed)
	dataDir := filepath.Join(t.TempDir(), "data")
	b := startBollard(t, "--data-dir", dataDir)
	subscribeOnce(t, b.mqtt, "crash-q1", "crash/q1/#", 1, crashSessionExpiry)
	subscribeOnce(t, b.mqtt, "crash-q2", "crash/q2/#", 2, crashSessionExpiry)
	pubs := startPublishers(b.mqtt, 600)
	pubs.wait()
	acked := pubs.ackedByTopic()
	if code := b.signal(syscall.SIGTERM, 60*time.Second); code != 0 {
		t.Fatalf("single node exit code %d", code)
	}
	t.Logf("%d messages acknowledged by the single node", sum(acked))

	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte(strings.Repeat("k", 40)), 0o600); err != nil {
		t.Fatal(err)
	}
	raftAddr := freePort(t)
	member := []string{"--data-dir", dataDir, "--cluster-member-id", "m0", "--cluster-bind", raftAddr,
		"--cluster-members", "m0=" + raftAddr, "--cluster-secret-file", secret, "--cluster-bootstrap"}
	for k := range 4 {
		m := launch(t, withDefaultPorts(member)...)
		adopted := adoptedDir(dataDir)
		switch {
		case adopted:
		case k == 3:
			// Kill it right after the commit point.
			m.waitLogOrExit("adopted the single node's store: this member is the cluster's only voter; members added later install its snapshot", 30*time.Second)
		default:
			// Kill it in the middle of the adoption: as it starts, or a
			// little later.
			m.waitLogOrExit("adopting the single node's store as the cluster's first state", 30*time.Second)
		}
		time.Sleep(time.Duration(rng.IntN(200*k+1)) * time.Millisecond) // a random kill point, not a wait for a condition
		m.kill()
		adopted = adoptedDir(dataDir)
		single, err := pebblestore.Exists(dataDir)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("kill %d: adopted %v, single node's store present %v", k, adopted, single)
		if !adopted && !single {
			t.Fatal("after a kill, the store is neither adopted nor left whole")
		}
	}
	m := startBollard(t, member...)
	waitUntil(t, 30*time.Second, "the member to serve", func() bool {
		code, _ := m.get("/readyz")
		return code == 200
	})
	checkQueuedAfterRestart(t, m, acked)
	q1 := drainSubscriber(t, m, "crash-q1", acked, "crash/q1/")
	q2 := drainSubscriber(t, m, "crash-q2", acked, "crash/q2/")
	checkDelivery(t, "QoS 1", q1, acked, "crash/q1/", false)
	checkDelivery(t, "QoS 2", q2, acked, "crash/q2/", true)
	if code := m.signal(syscall.SIGTERM, 60*time.Second); code != 0 {
		t.Errorf("member exit code %d", code)
	}

	s := launch(t, withDefaultPorts([]string{"--data-dir", dataDir})...)
	if code := s.wait(30 * time.Second); code == 0 {
		t.Fatal("a single node started on an adopted data directory")
	}
	if !strings.Contains(s.logs.String(), "holds a cluster member's state") {
		t.Fatalf("the refusal does not say why:\n%s", s.logs)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// adoptedDir: the adoption's commit point passed (ADOPTED: the single
// store's removal may be pending; ADOPTION-COMPLETE: done).
func adoptedDir(dataDir string) bool {
	return fileExists(filepath.Join(dataDir, "cluster", "ADOPTED")) || fileExists(filepath.Join(dataDir, "cluster", "ADOPTION-COMPLETE"))
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
