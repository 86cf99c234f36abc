package lograte

import (
	"fmt"
	"testing"
	"time"
)

// A line every 300 ms for 30 s: logged at 0, 10.2 and 20.4 s, each
// later one with the 33 left out before it; other kinds apart.
func TestAllow(t *testing.T) {
	l := &Limiter{Every: 10 * time.Second}
	start := time.Unix(1_800_000_000, 0)
	var got []string
	for i := range 100 {
		now := start.Add(time.Duration(i) * 300 * time.Millisecond)
		for _, key := range []string{"a", "b"} {
			if ok, n := l.Allow(key, now); ok {
				got = append(got, fmt.Sprintf("%s@%v:%d", key, now.Sub(start), n))
			}
		}
	}
	want := "[a@0s:0 b@0s:0 a@10.2s:33 b@10.2s:33 a@20.4s:33 b@20.4s:33]"
	if fmt.Sprint(got) != want {
		t.Fatalf("logged %v, want %s", got, want)
	}
}

// Whatever the keys, at most Kinds are remembered, and a new kind is
// always logged.
func TestAllowBounded(t *testing.T) {
	l := &Limiter{Every: 10 * time.Second, Kinds: 64}
	now := time.Unix(1_800_000_000, 0)
	for i := range 1000 {
		if ok, _ := l.Allow(fmt.Sprint(i), now); !ok {
			t.Fatalf("new kind %d not logged", i)
		}
		if i%50 == 0 {
			now = now.Add(3 * time.Second)
		}
		if n := l.Len(); n > 64 {
			t.Fatalf("%d kinds remembered", n)
		}
	}
}
