package engine

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/broker/packet"
	"github.com/bollard-io/bollard/broker/store"
	"github.com/bollard-io/bollard/broker/store/pebblestore"
	"github.com/bollard-io/bollard/test/poll"
)

func TestStoragePressure(t *testing.T) {
	for name, tc := range map[string]struct {
		st   StorageStats
		want bool
	}{
		"no budget, no volume":   {StorageStats{Used: 1 << 40}, false},
		"under 95% of budget":    {StorageStats{Used: 94, Budget: 100}, false},
		"at 95% of budget":       {StorageStats{Used: 95, Budget: 100}, true},
		"over budget":            {StorageStats{Used: 150, Budget: 100}, true},
		"volume above reserve":   {StorageStats{VolumeFree: 100, VolumeSize: 1000, MinVolumeFree: 50}, false},
		"volume below reserve":   {StorageStats{VolumeFree: 40, VolumeSize: 1000, MinVolumeFree: 50}, true},
		"volume unknown":         {StorageStats{MinVolumeFree: 50}, false},
		"reserve disabled":       {StorageStats{VolumeFree: 1, VolumeSize: 1000}, false},
		"both, budget unreached": {StorageStats{Used: 10, Budget: 100, VolumeFree: 1, VolumeSize: 1000, MinVolumeFree: 50}, true},
		// A cluster member keeps room for its next snapshot (Reserved).
		"room for the reserve and a snapshot": {StorageStats{VolumeFree: 300, VolumeSize: 1000, MinVolumeFree: 50, Reserved: 200}, false},
		"no room for the next snapshot":       {StorageStats{VolumeFree: 200, VolumeSize: 1000, MinVolumeFree: 50, Reserved: 200}, true},
		"snapshot room, reserve disabled":     {StorageStats{VolumeFree: 100, VolumeSize: 1000, Reserved: 200}, true},
	} {
		if got := storagePressure(tc.st); got != tc.want {
			t.Errorf("%s: storagePressure = %v, want %v", name, got, tc.want)
		}
	}
}

// reservingStore is a store whose volume keeps room for something else
// (as a cluster member's keeps room for its next snapshot).
type reservingStore struct {
	*pebblestore.Store
	reserved atomic.Int64
}

func (s *reservingStore) DiskUsage() (store.DiskUsage, error) {
	u, err := s.Store.DiskUsage()
	u.Reserved = s.reserved.Load()
	return u, err
}

// TestStoreVolumeReserve: the space a store reserves for itself counts
// with the free space reserve: new offline messages are refused once the
// volume's free space is below both, and taken again once it is not.
func TestStoreVolumeReserve(t *testing.T) {
	pst, err := pebblestore.Open(t.TempDir(), pebblestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pst.Close() })
	st := &reservingStore{Store: pst}
	cfg := testConfig()
	cfg.Queues.OverflowPolicy = config.OverflowRejectPublish
	b := startBroker(t, cfg, withStore(st))
	offlineSubscriber(t, b, "s", "t", 1)
	pub := dialRaw(t, b.addr, packet.V5)
	pub.connect(&packet.Connect{ClientID: "pub", CleanStart: true})
	if rc := publishQoS1(t, pub, "t", "1")[0]; rc != packet.Success {
		t.Fatalf("with room: %v", rc)
	}
	u, err := pst.DiskUsage()
	if err != nil || u.VolumeSize == 0 {
		t.Fatalf("volume unknown: %+v %v", u, err)
	}
	// The whole volume: more than is free beyond the 64 MiB reserve
	// whatever else frees space meanwhile (reserving what was free at the
	// read failed in CI once other tests' files were removed: the volume
	// gained more than the reserve in between).
	st.reserved.Store(u.VolumeSize)
	poll.Wait(t, 5*time.Second, 20*time.Millisecond, "the refusal", func() bool {
		return publishQoS1(t, pub, "t", "x")[0] == packet.QuotaExceeded
	})
	if sg := b.srv.Stats().Storage; !sg.Pressure || sg.Reserved != u.VolumeSize {
		t.Fatalf("storage: %+v", sg)
	}
	st.reserved.Store(0)
	poll.Wait(t, 5*time.Second, 20*time.Millisecond, "publishes taken again", func() bool {
		return publishQoS1(t, pub, "t", "y")[0] == packet.Success
	})
}

// TestStoreBudgetCountsDisk: tiny messages fanned out to many offline
// sessions cost queue entries on disk that their Size does not show; the
// budget counts the disk, so publishes are refused while the messages'
// own bytes are far under it. At the budget every accepted message still
// drains: acknowledgements and dequeues commit.
func TestStoreBudgetCountsDisk(t *testing.T) {
	st, err := pebblestore.Open(t.TempDir(), pebblestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	cfg := testConfig()
	cfg.Queues.MaxStoreBytes = 256 << 10
	cfg.Queues.OverflowPolicy = config.OverflowRejectPublish
	b := startBroker(t, cfg, withStore(st))
	const subs = 50
	for i := range subs {
		offlineSubscriber(t, b, "s"+strconv.Itoa(i), "fan", 1)
	}
	pub := dialRaw(t, b.addr, packet.V5)
	pub.connect(&packet.Connect{ClientID: "pub", CleanStart: true})
	accepted := 0
	deadline := time.Now().Add(60 * time.Second)
	for i := 1; ; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("no refusal after %d messages: %+v", accepted, b.srv.Stats().Storage)
		}
		rc := publishQoS1(t, pub, "fan", strconv.Itoa(i))[0]
		if rc == packet.QuotaExceeded {
			break
		}
		if rc != packet.Success {
			t.Fatalf("publish %d: %v", i, rc)
		}
		accepted++
		if i%50 == 0 {
			time.Sleep(diskSampleAge / 10) // let the disk sample follow
		}
	}
	sg := b.srv.Stats().Storage
	t.Logf("refused after %d messages to %d sessions: %+v", accepted, subs, sg)
	if sg.MessageBytes*4 > sg.Budget || sg.DiskBytes < sg.Budget/2 || !sg.Pressure {
		t.Fatalf("the refusal did not come from the disk: %+v", sg)
	}
	got := drainSession(t, b, "s0", accepted)
	if len(got) != accepted || got[0] != "1" {
		t.Fatalf("drained %d messages, want %d", len(got), accepted)
	}
}
