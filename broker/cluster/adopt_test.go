package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/bollard-io/bollard/broker/store"
	"github.com/bollard-io/bollard/broker/store/pebblestore"
	"github.com/bollard-io/bollard/test/logcheck"
)

const adoptedMessages = 300

// seedSingle writes a single node's store in dataDir: a session "dev"
// with adoptedMessages queued messages and a retained message.
func seedSingle(t testing.TB, dataDir string) {
	t.Helper()
	st, err := pebblestore.Open(dataDir, pebblestore.Options{Durability: pebblestore.Sync})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := st.Commit(ctx, sessionBatch("dev")); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= adoptedMessages; i++ {
		if err := st.Commit(ctx, enqueueBatch(st, "dev", uint64(i), fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	b := &store.Batch{}
	b.PutRetained(&store.Message{ID: st.NextMessageID(), Topic: "r", Payload: []byte("kept"), QoS: 1, Retain: true})
	if err := st.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

// checkAdopted fails unless st holds everything seedSingle wrote.
func checkAdopted(t testing.TB, who string, st store.Store) {
	t.Helper()
	got := payloads(t, st, "dev")
	if len(got) != adoptedMessages {
		t.Fatalf("%s holds %d of the %d queued messages", who, len(got), adoptedMessages)
	}
	for i, p := range got {
		if p != fmt.Sprint(i+1) {
			t.Fatalf("%s: message %d is %q", who, i+1, p)
		}
	}
	var retained []string
	if err := st.LoadRetained(func(m *store.Message) error { retained = append(retained, string(m.Payload)); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(retained) != 1 || retained[0] != "kept" {
		t.Fatalf("%s: retained %q", who, retained)
	}
}

// adoptingMember is the config of a member that bootstraps alone on
// dataDir.
func adoptingMember(t testing.TB, dataDir string, logw io.Writer) (Config, Member) {
	m := Member{ID: "m0", RaftAddress: freeAddrs(t, 1)[0], ClientAddress: "client-0:1883"}
	return Config{ID: m.ID, Dir: filepath.Join(dataDir, "cluster"), AdoptDir: dataDir, Bind: m.RaftAddress,
		Members: []Member{m}, Bootstrap: true, Secret: testSecret, Timing: fastTiming,
		Logger: slog.New(slog.NewTextHandler(logw, nil))}, m
}

func serving(t testing.TB, n *Node) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		s, ch := n.State()
		if s.Serving {
			return
		}
		select {
		case <-ch:
		case <-time.After(time.Until(deadline)):
			t.Fatalf("%s never served", n.cfg.ID)
		}
	}
}

// TestAdoptSingleStore: a bootstrapping member adopts the single node's
// store, leads alone, serves its data, and members added later receive
// it by snapshot: the log holds none of it.
func TestAdoptSingleStore(t *testing.T) {
	dataDir := t.TempDir()
	seedSingle(t, dataDir)
	logs := &logcheck.Buffer{}
	cfg, _ := adoptingMember(t, dataDir, logs)
	n, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	serving(t, n)
	checkAdopted(t, "the adopting member", n.Store())
	if !strings.Contains(logs.String(), "adopted the single node's store") {
		t.Fatalf("no log line says the store was adopted:\n%s", logs)
	}
	if has, err := pebblestore.Exists(dataDir); err != nil || has {
		t.Fatalf("the single node's store is still in the data directory (%v, %v)", has, err)
	}
	// The adopted data is in no log entry: the log starts after the
	// snapshot, so a joiner cannot replay it from index 1.
	if first, _ := n.logs.FirstIndex(); first == 1 {
		t.Fatal("the leader's log holds index 1: a joiner would replay the log and miss the adopted data")
	}
	for i := uint64(1); i <= adoptIndex; i++ {
		var l raft.Log
		if err := n.logs.GetLog(i, &l); !errors.Is(err, raft.ErrLogNotFound) {
			t.Fatalf("log entry %d: %v, want not found", i, err)
		}
	}
	// New writes replicate as usual.
	ctx := context.Background()
	if err := n.Store().Commit(ctx, sessionBatch("after")); err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for k := 1; k <= 2; k++ {
		m := Member{ID: fmt.Sprintf("m%d", k), RaftAddress: freeAddrs(t, 1)[0]}
		j, err := Open(Config{ID: m.ID, Dir: filepath.Join(t.TempDir(), "cluster"), Bind: m.RaftAddress,
			Members: []Member{m}, Secret: testSecret, Timing: fastTiming, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = j.Close() })
		actx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = n.AddMember(actx, m)
		cancel()
		if err != nil {
			t.Fatalf("add %s: %v", m.ID, err)
		}
		waitApplied(t, j, n)
		if j.Status().LastSnapshotIndex == 0 {
			t.Fatalf("%s caught up without installing the snapshot", m.ID)
		}
		checkAdopted(t, m.ID, j.Store())
	}
	// A restart keeps the adopted state and adopts nothing again.
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	n2, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n2.Close() })
	checkAdopted(t, "the restarted member", n2.Store())
	if c := strings.Count(logs.String(), "adopting the single node's store"); c != 1 {
		t.Fatalf("adoption ran %d times", c)
	}
}

// TestAdoptCrashes stops the adoption at each step, as a kill would, and
// restarts: before the commit point the single node's store is intact and
// the adoption starts over; after it the member is adopted. Either way no
// data is lost and the member serves it.
func TestAdoptCrashes(t *testing.T) {
	steps := []string{"marked", "copied", "stored", "snapshotted", "termed", "committed", "removed"}
	for _, step := range steps {
		t.Run(step, func(t *testing.T) {
			dataDir := t.TempDir()
			seedSingle(t, dataDir)
			cfg, _ := adoptingMember(t, dataDir, io.Discard)
			errCrash := errors.New("crash at " + step)
			adoptCrash = func(s string) error {
				if s == step {
					return errCrash
				}
				return nil
			}
			_, err := Open(cfg)
			adoptCrash = nil
			if !errors.Is(err, errCrash) {
				t.Fatalf("open: %v, want the injected crash", err)
			}
			committed := step == "committed" || step == "removed"
			if !committed {
				// Not adopted yet: the single node's store is whole.
				if !exists(filepath.Join(cfg.Dir, adoptingMarker)) {
					t.Fatal("no ADOPTING marker before the commit point")
				}
				st, err := pebblestore.Open(dataDir, pebblestore.Options{Durability: pebblestore.Sync})
				if err != nil {
					t.Fatal(err)
				}
				checkAdopted(t, "the single node's store", st)
				if err := st.Close(); err != nil {
					t.Fatal(err)
				}
			} else if !exists(filepath.Join(cfg.Dir, adoptedMarker)) {
				t.Fatal("no ADOPTED marker after the commit point")
			}
			n, err := Open(cfg)
			if err != nil {
				t.Fatalf("restart after the crash: %v", err)
			}
			defer n.Close()
			serving(t, n)
			checkAdopted(t, "the member after the crash", n.Store())
			if has, _ := pebblestore.Exists(dataDir); has {
				t.Fatal("the single node's store is left beside the adopted one")
			}
			if exists(filepath.Join(cfg.Dir, adoptingMarker)) || exists(filepath.Join(cfg.Dir, adoptedMarker)) ||
				!exists(filepath.Join(cfg.Dir, completeMarker)) {
				t.Fatal("the markers do not say the adoption is complete")
			}
		})
	}
}

// TestAdoptRefusesWrongStores: the combinations the member will not
// guess about are refused with an error that says what to do.
func TestAdoptRefusesWrongStores(t *testing.T) {
	t.Run("no bootstrap", func(t *testing.T) {
		dataDir := t.TempDir()
		seedSingle(t, dataDir)
		cfg, _ := adoptingMember(t, dataDir, io.Discard)
		cfg.Bootstrap = false
		_, err := Open(cfg)
		if !errors.Is(err, ErrWrongStore) || !strings.Contains(err.Error(), "--cluster-bootstrap") {
			t.Fatalf("open: %v", err)
		}
		if exists(filepath.Join(cfg.Dir, "store")) || exists(filepath.Join(cfg.Dir, "raft")) {
			t.Fatal("a refused member wrote cluster state")
		}
	})
	t.Run("several members listed", func(t *testing.T) {
		dataDir := t.TempDir()
		seedSingle(t, dataDir)
		cfg, _ := adoptingMember(t, dataDir, io.Discard)
		cfg.Members = append(cfg.Members, Member{ID: "m1", RaftAddress: "127.0.0.1:1"})
		if _, err := Open(cfg); !errors.Is(err, ErrWrongStore) || !strings.Contains(err.Error(), "list only this member") {
			t.Fatalf("open: %v", err)
		}
	})
	t.Run("cluster state beside a single store", func(t *testing.T) {
		dataDir := t.TempDir()
		cfg, _ := adoptingMember(t, dataDir, io.Discard)
		cfg.AdoptDir = ""
		n, err := Open(cfg) // an ordinary member: Raft state, no single store
		if err != nil {
			t.Fatal(err)
		}
		serving(t, n)
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
		seedSingle(t, dataDir)
		cfg.AdoptDir = dataDir
		if _, err := Open(cfg); !errors.Is(err, ErrWrongStore) || !strings.Contains(err.Error(), "move one of them aside") {
			t.Fatalf("open: %v", err)
		}
		if !HasClusterState(cfg.Dir) {
			t.Fatal("HasClusterState is false for a member's directory")
		}
	})
	t.Run("a single store after a complete adoption", func(t *testing.T) {
		dataDir := t.TempDir()
		seedSingle(t, dataDir)
		cfg, _ := adoptingMember(t, dataDir, io.Discard)
		n, err := Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
		seedSingle(t, dataDir) // someone's copy: not the adopted store
		if _, err := Open(cfg); !errors.Is(err, ErrWrongStore) || !strings.Contains(err.Error(), "move one of them aside") {
			t.Fatalf("open: %v", err)
		}
		if has, _ := pebblestore.Exists(dataDir); !has {
			t.Fatal("a single store found after the adoption was removed")
		}
	})
	t.Run("adoption under way, single store gone", func(t *testing.T) {
		dataDir := t.TempDir()
		seedSingle(t, dataDir)
		cfg, _ := adoptingMember(t, dataDir, io.Discard)
		adoptCrash = func(s string) error {
			if s == "stored" {
				return errors.New("crash")
			}
			return nil
		}
		_, err := Open(cfg)
		adoptCrash = nil
		if err == nil {
			t.Fatal("no crash")
		}
		if err := pebblestore.Remove(dataDir); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(cfg); !errors.Is(err, ErrWrongStore) || !strings.Contains(err.Error(), "that store is gone") {
			t.Fatalf("open: %v", err)
		}
	})
	t.Run("no single store: an ordinary member", func(t *testing.T) {
		dataDir := t.TempDir()
		if HasClusterState(filepath.Join(dataDir, "cluster")) {
			t.Fatal("HasClusterState is true for an empty directory")
		}
		cfg, _ := adoptingMember(t, dataDir, io.Discard)
		n, err := Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer n.Close()
		if exists(filepath.Join(cfg.Dir, adoptedMarker)) {
			t.Fatal("a member with nothing to adopt marked an adoption")
		}
	})
}

// TestDialIDsReachAddedMember: a member added at run time, whose
// replication address does not resolve here, is dialled at the
// DialIDs entry of its ID (the e2e node agent's stand-in for DNS).
func TestDialIDsReachAddedMember(t *testing.T) {
	addrs := freeAddrs(t, 2)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	m0 := Member{ID: "m0", RaftAddress: addrs[0]}
	m1 := Member{ID: "m1", RaftAddress: "m1.members.invalid:8081"}
	lead, err := Open(Config{ID: "m0", Dir: t.TempDir(), Bind: addrs[0], Members: []Member{m0}, Bootstrap: true,
		Secret: testSecret, Timing: fastTiming, Logger: quiet, DialIDs: map[string]string{"m1": addrs[1]}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lead.Close() })
	serving(t, lead)
	if err := lead.Store().Commit(context.Background(), sessionBatch("dev")); err != nil {
		t.Fatal(err)
	}
	j, err := Open(Config{ID: "m1", Dir: t.TempDir(), Bind: addrs[1], Members: []Member{m1},
		Secret: testSecret, Timing: fastTiming, Logger: quiet, DialIDs: map[string]string{"m0": addrs[0]}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = j.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := lead.AddMember(ctx, m1); err != nil {
		t.Fatalf("add a member known only by ID in DialIDs: %v", err)
	}
	waitApplied(t, j, lead)
	if got := j.memberAt("m1.members.invalid:8081"); got != "m1" {
		t.Fatalf("the joiner finds %q at its own address in the configuration", got)
	}
}
