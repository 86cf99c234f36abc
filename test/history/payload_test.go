package history_test

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/bollard-io/bollard/test/history"
)

func TestPayloadRoundTrip(t *testing.T) {
	for _, c := range []struct {
		id  string
		seq uint64
	}{{"a", 0}, {"pub-qos1", 1}, {"x.y_z-9", 12345}, {strings.Repeat("i", history.MaxIDLen), math.MaxUint64}} {
		b, err := history.Encode(c.id, c.seq)
		if err != nil {
			t.Fatal(err)
		}
		id, seq, err := history.Decode(b)
		if err != nil || id != c.id || seq != c.seq {
			t.Errorf("Decode(%q) = %q, %d, %v", b, id, seq, err)
		}
	}
	if b, _ := history.Encode("p1", 42); string(b) != "pub-p1/42" {
		t.Fatalf("Encode = %q, want pub-p1/42", b)
	}
}

func TestEncodeRefusesBadIDs(t *testing.T) {
	for _, id := range []string{"", "a/b", "a b", "é", strings.Repeat("i", history.MaxIDLen+1), "a\x00"} {
		if _, err := history.Encode(id, 1); !errors.Is(err, history.ErrMalformed) {
			t.Errorf("Encode(%q) = %v", id, err)
		}
	}
}

func TestDecodeRefusesGarbage(t *testing.T) {
	for _, p := range []string{
		"", "pub-", "pub-/1", "pub-a", "pub-a/", "pub-a/-1", "pub-a/+1", "pub-a/01", "pub-a/1x",
		"pub-a/1/2", "pub-a b/1", "seq-1", "PUB-a/1", "pub-a/18446744073709551616", " pub-a/1", "pub-a/1\n",
		"pub-" + strings.Repeat("i", history.MaxIDLen+1) + "/1", "pub-a/" + strings.Repeat("9", 30),
		string(bytes.Repeat([]byte{0xff}, 1<<20)),
	} {
		if id, seq, err := history.Decode([]byte(p)); !errors.Is(err, history.ErrMalformed) {
			t.Errorf("Decode(%.40q) = %q, %d, %v", p, id, seq, err)
		}
	}
	if _, _, err := history.Decode(nil); err == nil {
		t.Error("Decode(nil) succeeded")
	}
}

// FuzzDecode: Decode never panics, and what it accepts encodes back to
// the same bytes.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{"pub-a/1", "pub-x.y_z/0", "pub-a/01", "pub-/1", "seq-7", "pub-a/18446744073709551615"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		id, seq, err := history.Decode(b)
		if err != nil {
			if !errors.Is(err, history.ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		back, err := history.Encode(id, seq)
		if err != nil || !bytes.Equal(back, b) {
			t.Fatalf("Decode(%q) = %q, %d; Encode gives %q, %v", b, id, seq, back, err)
		}
	})
}
