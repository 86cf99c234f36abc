//go:build loadbench

package load

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// BenchmarkClient compares the client cost of this package's lean client
// with paho.golang on the same workload (one QoS 1 publisher, one QoS 1
// subscriber, 64-byte payloads) against mosquitto, a separate process, so
// the CPU time of this process is the clients' alone: see cpu-ns/msg.
func BenchmarkClient(b *testing.B) {
	bin := FindMosquitto()
	if bin == "" {
		b.Skip("mosquitto not installed")
	}
	tg, err := NewMosquitto(MosquittoOptions{Binary: bin, Dir: b.TempDir(), MaxInflight: 128})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := tg.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := tg.Stop(ctx); err != nil {
			b.Error(err)
		}
	}()
	b.Run("lean", func(b *testing.B) { benchClient(b, func() error { return leanPubSub(ctx, tg.Addr(), b.N) }) })
	b.Run("paho", func(b *testing.B) { benchClient(b, func() error { return pahoPubSub(ctx, tg.Addr(), b.N) }) })
}

func benchClient(b *testing.B, run func() error) {
	b.ReportAllocs()
	before := cpuTime()
	b.ResetTimer()
	if err := run(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-before)/float64(b.N), "cpu-ns/msg")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func leanPubSub(ctx context.Context, addr string, n int) error {
	_, err := RunPubSub(ctx, addr, PubSubSpec{
		Subscribers: 1, QoS: 1, Messages: n, Payload: payloadSize, Window: 500, Timeout: time.Minute,
	})
	return err
}

func pahoPubSub(ctx context.Context, addr string, n int) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var got atomic.Int64
	done := make(chan struct{})
	sub, err := pahoConnect(ctx, addr, "paho-sub", func(paho.PublishReceived) (bool, error) {
		if got.Add(1) == int64(n) {
			close(done)
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	defer func() { _ = sub.Disconnect(&paho.Disconnect{}) }() // the run's outcome is already known
	topic := fmt.Sprintf("load/paho/%d", time.Now().UnixNano())
	if _, err := sub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: 1}}}); err != nil {
		return err
	}
	pub, err := pahoConnect(ctx, addr, "paho-pub", nil)
	if err != nil {
		return err
	}
	defer func() { _ = pub.Disconnect(&paho.Disconnect{}) }() // the run's outcome is already known
	payload := make([]byte, payloadSize)
	for range n {
		_, err := pub.PublishWithOptions(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: payload},
			paho.PublishOptions{Method: paho.PublishMethod_AsyncSend})
		if err != nil {
			return err
		}
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("paho: %d of %d delivered: %w", got.Load(), n, ctx.Err())
	}
}

func pahoConnect(ctx context.Context, addr, id string, onPub func(paho.PublishReceived) (bool, error)) (*paho.Client, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	cfg := paho.ClientConfig{Conn: conn}
	if onPub != nil {
		cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){onPub}
	}
	c := paho.NewClient(cfg)
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: id, CleanStart: true}); err != nil {
		return nil, err
	}
	return c, nil
}
