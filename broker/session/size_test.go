package session

import (
	"testing"
	"unsafe"
)

// TestSessionSize keeps a Session within the 288-byte size class: a broker
// holds a million offline sessions, and the next class up (320) costs 32 MB
// more of them (docs/architecture.md, fleet scale).
func TestSessionSize(t *testing.T) {
	if got := unsafe.Sizeof(Session{}); got > 288 {
		t.Fatalf("a Session is %d bytes, over the 288-byte size class", got)
	}
}
