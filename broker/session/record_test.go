package session

import (
	"reflect"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/store"
)

// TestRecordRoundTrip: the compact record gives back the store.Session it
// was made from, its times in UTC as the store recovers them: the zero
// time, the Unix epoch (not taken for "none") and times beyond what int64
// nanoseconds hold (clamped).
func TestRecordRoundTrip(t *testing.T) {
	will := &store.Will{Message: store.Message{Topic: "w", Payload: []byte("x")}, DelayInterval: 5}
	base := time.Unix(1_800_000_000, 123).UTC()
	tests := map[string]struct {
		in, want store.Session
	}{
		"times": {
			in:   store.Session{ClientID: "c", Principal: "p", ProtocolVersion: 5, ExpiryInterval: 60, CreatedAt: base, DisconnectedAt: base.Add(time.Hour), Will: will},
			want: store.Session{ClientID: "c", Principal: "p", ProtocolVersion: 5, ExpiryInterval: 60, CreatedAt: base, DisconnectedAt: base.Add(time.Hour), Will: will},
		},
		"zero times": {
			in:   store.Session{ClientID: "c", ProtocolVersion: 4},
			want: store.Session{ClientID: "c", ProtocolVersion: 4},
		},
		"epoch and a local time": {
			in:   store.Session{ClientID: "c", CreatedAt: time.Unix(0, 0), DisconnectedAt: base.Local()},
			want: store.Session{ClientID: "c", CreatedAt: time.Unix(0, 0).UTC(), DisconnectedAt: base},
		},
		"beyond int64 nanoseconds": {
			in:   store.Session{ClientID: "c", CreatedAt: time.Date(1500, 1, 1, 0, 0, 0, 0, time.UTC), DisconnectedAt: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)},
			want: store.Session{ClientID: "c", CreatedAt: time.Unix(0, -1<<63).UTC(), DisconnectedAt: time.Unix(0, 1<<63-1).UTC()},
		},
	}
	for name, tc := range tests {
		r := compactRecord(tc.in)
		got := r.full()
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %+v, want %+v", name, got, tc.want)
		}
		if got.Will != nil && got.Will == tc.in.Will {
			t.Errorf("%s: the will is not copied", name)
		}
		if !r.expiresAt().Equal(tc.want.ExpiresAt()) {
			t.Errorf("%s: expires at %v, want %v", name, r.expiresAt(), tc.want.ExpiresAt())
		}
	}
}
