package topic

import (
	"fmt"
	"testing"
)

// benchTrie holds 100k subscriptions shaped like a fleet of devices: each
// client subscribes to its own command topic, plus a sprinkling of
// wildcard, broadcast and shared subscriptions.
func benchTrie(b *testing.B) *Trie[int] {
	b.Helper()
	var tr Trie[int]
	for i := range 100_000 {
		id := fmt.Sprintf("client-%d", i)
		var f string
		switch i % 10 {
		case 0:
			f = fmt.Sprintf("devices/%d/+", i%1000)
		case 1:
			f = fmt.Sprintf("site/%d/#", i%100)
		case 2:
			f = fmt.Sprintf("$share/g%d/devices/+/telemetry", i%7)
		default:
			f = fmt.Sprintf("devices/%d/cmd", i)
		}
		if _, err := tr.Add(f, id, i); err != nil {
			b.Fatal(err)
		}
	}
	mustAdd(b, &tr, "#", "monitor")
	return &tr
}

func BenchmarkTrieMatch(b *testing.B) {
	tr := benchTrie(b)
	topics := map[string]string{
		"exact":  "devices/4243/cmd",
		"shared": "devices/42/telemetry",
		"deep":   "site/11/a/b/c/d",
		"miss":   "nothing/here",
	}
	for name, topicName := range topics {
		b.Run(name, func(b *testing.B) {
			var m Matches[int]
			b.ReportAllocs()
			for b.Loop() {
				tr.Match(topicName, &m)
			}
			b.ReportMetric(float64(m.Len()), "matches")
		})
	}
}

func BenchmarkTrieMatchParallel(b *testing.B) {
	tr := benchTrie(b)
	topics := make([]string, 1000)
	for i := range topics {
		topics[i] = fmt.Sprintf("devices/%d/cmd", i*97)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var m Matches[int]
		i := 0
		for pb.Next() {
			tr.Match(topics[i%len(topics)], &m)
			i++
		}
	})
}

func BenchmarkTrieAddRemove(b *testing.B) {
	tr := benchTrie(b)
	b.ReportAllocs()
	for b.Loop() {
		mustAdd(b, tr, "devices/x/+/y", "bench")
		tr.Remove("devices/x/+/y", "bench")
	}
}

func BenchmarkRetainedMatch(b *testing.B) {
	var r Retained[int]
	for i := range 100_000 {
		r.Set(fmt.Sprintf("devices/%d/status", i), i)
	}
	for name, filter := range map[string]string{
		"exact": "devices/4242/status", "plus": "devices/+/status", "hash": "devices/42/#",
	} {
		b.Run(name, func(b *testing.B) {
			n := 0
			for b.Loop() {
				r.Match(filter, func(string, int) bool { n++; return true })
			}
		})
	}
}
