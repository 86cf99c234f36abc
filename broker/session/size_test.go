package session

import (
	"testing"
	"unsafe"
)

// TestSessionSize keeps a Session within the 240-byte size class: a broker
// holds a million offline sessions, and the next class up (256) costs 16 MB
// more of them (docs/architecture.md, fleet scale).
func TestSessionSize(t *testing.T) {
	if got := unsafe.Sizeof(Session{}); got > 240 {
		t.Fatalf("a Session is %d bytes, over the 240-byte size class", got)
	}
}
