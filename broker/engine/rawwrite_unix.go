//go:build unix

package engine

import (
	"errors"
	"io"
	"net"
	"sync/atomic"
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
		m, err := sysWrite(fd, rw.b[rw.n:])
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

// rawReader reads a socket through its raw connection with sysRead, for
// the same reason as writeNoWait's sysWrite: a read that the poller said
// may succeed never blocks, and the scheduler's bookkeeping of a system
// call (waking its monitor thread) cost more than the read. Waiting for
// readability, read deadlines and a concurrent Close work as for
// net.Conn's Read: RawConn.Read waits through the runtime's poller. It
// counts the bytes read into n. Only the read loop uses it.
type rawReader struct {
	raw syscall.RawConn
	n   *atomic.Uint64
	fn  func(fd uintptr) bool // rr.read, bound once
	b   []byte
	got int
	err error
}

// newRawReader returns a reader of raw counting into n, or nil when raw
// is nil.
func newRawReader(raw syscall.RawConn, n *atomic.Uint64) io.Reader {
	if raw == nil {
		return nil
	}
	rr := &rawReader{raw: raw, n: n}
	rr.fn = rr.read
	return rr
}

func (rr *rawReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	rr.b, rr.got, rr.err = p, 0, nil
	err := rr.raw.Read(rr.fn)
	rr.b = nil
	if err == nil {
		err = rr.err
	}
	if rr.got > 0 {
		rr.n.Add(uint64(rr.got))
		return rr.got, nil // an error comes back on the next read
	}
	if err == nil {
		err = io.EOF
	}
	return 0, err
}

// read is one attempt: false asks RawConn.Read to wait for readability.
func (rr *rawReader) read(fd uintptr) bool {
	for {
		n, err := sysRead(fd, rr.b)
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EAGAIN):
			return false
		case err != nil:
			rr.err = err
		default:
			rr.got = n
		}
		return true
	}
}
