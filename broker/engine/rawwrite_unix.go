//go:build unix

package engine

import (
	"errors"
	"net"
	"syscall"
)

// rawConnOf returns the raw socket of nc for writes that must not wait,
// or nil when nc is not a socket of the operating system's (a TLS or
// WebSocket connection, a pipe in tests): then only the writer
// goroutine writes.
func rawConnOf(nc net.Conn) syscall.RawConn {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}

// writeNoWait writes as much of b to raw as the socket takes at once,
// without waiting for it to become writable: n < len(b) means the rest is
// for the writer goroutine (the socket buffer is full, or an error that
// the writer's own write reports). rw is the caller's (under conn.wmu),
// kept so that a write allocates no closure.
func writeNoWait(raw syscall.RawConn, rw *rawWrite, b []byte) (n int) {
	if rw.fn == nil {
		rw.fn = rw.write
	}
	rw.b, rw.n = b, 0
	// An error of the raw write (the socket is closed, the write
	// deadline passed) leaves n as it is: the writer goroutine's write
	// reports it.
	_ = raw.Write(rw.fn)
	n = rw.n
	rw.b = nil
	return n
}

// rawWrite is the state of one writeNoWait: the bytes and how many the
// socket took.
type rawWrite struct {
	b  []byte
	n  int
	fn func(fd uintptr) bool // rw.write, bound once
}

func (rw *rawWrite) write(fd uintptr) bool {
	for rw.n < len(rw.b) {
		m, err := syscall.Write(int(fd), rw.b[rw.n:])
		if m <= 0 || err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			break
		}
		rw.n += m
	}
	return true // never wait for writability
}
