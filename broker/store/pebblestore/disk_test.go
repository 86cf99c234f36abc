package pebblestore

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/bollard-io/bollard/broker/store"
)

// TestDiskUsageCountsWhatIsWritten: DiskUsage follows the bytes really
// written (WAL and tables), well beyond the messages' own Size when many
// small records are written, and reports the volume's free space.
func TestDiskUsageCountsWhatIsWritten(t *testing.T) {
	s, err := Open(t.TempDir(), Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	before, err := s.DiskUsage()
	if err != nil {
		t.Fatal(err)
	}
	if before.VolumeFree <= 0 || before.VolumeSize < before.VolumeFree {
		t.Fatalf("volume space %+v", before)
	}
	payload := make([]byte, 1000)
	for i := range payload {
		payload[i] = byte(rand.N(256)) // incompressible
	}
	for i := range 2000 {
		var b store.Batch
		b.PutRetained(&store.Message{ID: uint64(i + 1), Topic: "t/" + strconv.Itoa(i), Payload: payload})
		if err := s.Commit(context.Background(), &b); err != nil {
			t.Fatal(err)
		}
	}
	after, err := s.DiskUsage()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("disk usage before %+v, after 2,000 records of 1 KB: %+v", before, after)
	// The WAL may hold part of it in a preallocated file counted already.
	if grown := after.Used - before.Used; grown < 1500*1000 {
		t.Fatalf("disk usage grew by %d bytes for 2 MB written", grown)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DiskUsage(); !errors.Is(err, errClosed) {
		t.Fatalf("DiskUsage after Close: %v", err)
	}
}
