// Package logcheck checks the JSON log lines of a broker process, as a log
// shipper would read them.
package logcheck

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// RepeatedKey finds a JSON record in log (one per line) whose top level
// names a key twice, as when a logger that already has an attribute is
// given it again, and returns that line and the key; "" for none. A log
// shipper keeps only one of the two values.
func RepeatedKey(log string) (line, key string) {
	for line := range strings.SplitSeq(log, "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		dec := json.NewDecoder(strings.NewReader(line))
		if _, err := dec.Token(); err != nil {
			continue
		}
		seen := map[string]bool{}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				break
			}
			key, _ := tok.(string)
			if seen[key] {
				return line, key
			}
			seen[key] = true
			var v json.RawMessage
			if dec.Decode(&v) != nil {
				break
			}
		}
	}
	return "", ""
}

// Buffer is a log destination safe for concurrent use, for the loggers of
// in-process tests.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Records decodes the JSON records (one per line) whose message is msg,
// or all of them for ""; a line that is not a JSON object is an error.
func (l *Buffer) Records(msg string) ([]map[string]any, error) {
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(l.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			return nil, fmt.Errorf("log line %q: %w", line, err)
		}
		if msg == "" || m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out, nil
}

// MustRecords is Records for a test: a line that is not a JSON object
// fails it.
func (l *Buffer) MustRecords(t testing.TB, msg string) []map[string]any {
	t.Helper()
	recs, err := l.Records(msg)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}
