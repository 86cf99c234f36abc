//go:build !unix

package engine

import (
	"io"
	"net"
	"sync/atomic"
	"syscall"
)

// rawConnOf returns nil: inline writes need a Unix socket; the writer
// goroutine writes everything.
func rawConnOf(net.Conn) syscall.RawConn { return nil }

func writeNoWait(syscall.RawConn, *rawWrite, []byte) int { return 0 }

// rawWrite is unused without Unix sockets.
type rawWrite struct{}

// newRawReader returns nil: the read loop reads through net.Conn.
func newRawReader(syscall.RawConn, *atomic.Uint64) io.Reader { return nil }
