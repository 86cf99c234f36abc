//go:build unix

package engine

import (
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (local, peer net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	local, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = local.Close() })
	peer, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { _ = peer.Close() })
	return local, peer
}

// The read loop reads a socket by raw system calls (rawReader): it must
// behave as net.Conn's Read does for everything the read loop relies on.
func TestRawReaderReadsAsNetConn(t *testing.T) {
	t.Run("data, counted, then EOF", func(t *testing.T) {
		nc, peer := tcpPair(t)
		var n atomic.Uint64
		rr := newRawReader(rawConnOf(nc), &n)
		want := []byte("0123456789abcdef")
		if _, err := peer.Write(want); err != nil {
			t.Fatal(err)
		}
		_ = peer.Close()
		got, err := io.ReadAll(rr) // waits for the data, then the EOF
		if err != nil {
			t.Fatalf("ReadAll: %v", err)
		}
		if string(got) != string(want) || n.Load() != uint64(len(want)) {
			t.Fatalf("read %q counting %d, want %q counting %d", got, n.Load(), want, len(want))
		}
	})
	t.Run("a read larger than rawSyscallMax", func(t *testing.T) {
		nc, peer := tcpPair(t)
		var n atomic.Uint64
		rr := newRawReader(rawConnOf(nc), &n)
		want := make([]byte, 3*rawSyscallMax)
		for i := range want {
			want[i] = byte(i * 7)
		}
		go func() { _, _ = peer.Write(want) }()
		got := make([]byte, len(want))
		if _, err := io.ReadFull(rr, got); err != nil {
			t.Fatalf("ReadFull: %v", err)
		}
		if string(got) != string(want) || n.Load() != uint64(len(want)) {
			t.Fatalf("a large read differs or counted %d of %d bytes", n.Load(), len(want))
		}
	})
	t.Run("read deadline is a timeout", func(t *testing.T) {
		nc, _ := tcpPair(t)
		rr := newRawReader(rawConnOf(nc), new(atomic.Uint64))
		_ = nc.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		_, err := rr.Read(make([]byte, 16))
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("Read past the deadline: %v, want a timeout (keep alive)", err)
		}
	})
	t.Run("close ends a waiting read", func(t *testing.T) {
		nc, _ := tcpPair(t)
		rr := newRawReader(rawConnOf(nc), new(atomic.Uint64))
		done := make(chan error, 1)
		go func() {
			_, err := rr.Read(make([]byte, 16))
			done <- err
		}()
		time.AfterFunc(20*time.Millisecond, func() { _ = nc.Close() })
		select {
		case err := <-done:
			if !errors.Is(err, net.ErrClosed) {
				t.Fatalf("Read after Close: %v, want net.ErrClosed", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Close did not end a waiting Read")
		}
	})
	t.Run("no allocation per read", func(t *testing.T) {
		nc, peer := tcpPair(t)
		rr := newRawReader(rawConnOf(nc), new(atomic.Uint64))
		msg, buf := make([]byte, 64), make([]byte, 64)
		if n := testing.AllocsPerRun(100, func() {
			if _, err := peer.Write(msg); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(rr, buf); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("rawReader allocates %.1f times per read", n)
		}
	})
}
