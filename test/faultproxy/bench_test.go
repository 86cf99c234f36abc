package faultproxy_test

import (
	"io"
	"net"
	"testing"
	"time"
)

// BenchmarkThroughput sends 100 MiB to a sink straight and through a
// proxy without faults, and reports the proxy's time over the direct time
// (proxy/direct; 1 would be free). MB/s is of the proxied transfer.
func BenchmarkThroughput(b *testing.B) {
	const total = 100 << 20
	sink := serve(b, func(c net.Conn) {
		_, err := io.Copy(io.Discard, c)
		if err == nil {
			_, _ = c.Write([]byte{1}) // everything arrived
		}
	})
	p := newProxy(b, sink.addr())
	buf := make([]byte, 1<<20)
	send := func(addr string) time.Duration {
		start := time.Now()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		for sent := 0; sent < total; sent += len(buf) {
			if _, err := c.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
		if err := c.(*net.TCPConn).CloseWrite(); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	b.SetBytes(total)
	var direct, proxied time.Duration
	for b.Loop() {
		b.StopTimer()
		direct += send(sink.addr())
		b.StartTimer()
		proxied += send(p.Addr())
	}
	b.ReportMetric(float64(proxied)/float64(direct), "proxy/direct")
}
