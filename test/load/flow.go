package load

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/bollard-io/bollard/broker/packet"
)

// Payload layout: every message carries its send time and its origin, so a
// subscriber measures latency and checks per-publisher order.
const (
	offTime   = 0  // int64 UnixNano at send
	offPub    = 8  // uint32 publisher index
	offSeq    = 12 // uint32 sequence number within the publisher
	minLength = 16 // the smallest payload that holds the header
)

// flushBytes is how much a publisher buffers before it writes to the
// socket: a few dozen 64-byte messages per write keeps the client cheap
// without hiding latency behind a large buffer.
const flushBytes = 4 << 10

// stallTimeout ends a load loop that has made no progress for this long.
const stallTimeout = 5 * time.Second

// ErrStalled reports a load loop that stopped making progress (a broker
// dropping messages, or a dead connection).
var ErrStalled = errors.New("load: no progress")

// signal is a wake-up channel with room for one pending token, so a signal
// sent between a check and a wait is never lost.
type signal chan struct{}

func newSignal() signal { return make(signal, 1) }

func (s signal) notify() {
	select {
	case s <- struct{}{}:
	default:
	}
}

// wait blocks until a signal, ctx ends, or stallTimeout passes.
func (s signal) wait(ctx context.Context) error {
	t := time.NewTimer(stallTimeout)
	defer t.Stop()
	select {
	case <-s:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("load: %w", ctx.Err())
	case <-t.C:
		return ErrStalled
	}
}

// Publisher sends numbered messages on one connection from a pre-encoded
// PUBLISH template (only the packet ID and payload header change per
// message), keeping at most Window QoS 1 messages unacknowledged.
type Publisher struct {
	c      *Client
	qos    byte
	index  uint32
	tmpls  []template // one per topic, used round robin
	window int64
	nextID uint16

	sent     atomic.Int64
	acked    atomic.Int64
	rejected atomic.Int64
	wake     signal
	// Gate, when set, must return true before each message is sent; it is
	// re-evaluated after every Wake (for end-to-end windows).
	Gate func(sent int64) bool
}

// template is an encoded PUBLISH whose packet identifier and payload
// header are rewritten for each message.
type template struct {
	b      []byte
	idOff  int // offset of the packet identifier
	payOff int // offset of the payload
}

func newTemplate(topic string, qos byte, size int) (template, error) {
	pub := &packet.Publish{Topic: topic, QoS: qos, Payload: make([]byte, size)}
	if qos > 0 {
		pub.PacketID = 1
	}
	b, err := packet.Append(nil, pub, packet.V5)
	if err != nil {
		return template{}, fmt.Errorf("load: encode template: %w", err)
	}
	t := template{b: b, payOff: len(b) - size}
	t.idOff = t.payOff - 1 - 2 // 5.0: the packet ID, property length 0, payload
	return t, nil
}

// NewPublisher prepares a publisher of size-byte payloads, sent round
// robin to topics.
func NewPublisher(c *Client, index int, topics []string, qos byte, size, window int) (*Publisher, error) {
	if size < minLength {
		return nil, fmt.Errorf("load: payload of %d bytes is smaller than its %d-byte header", size, minLength)
	}
	p := &Publisher{
		c: c, qos: qos, index: uint32(index),
		window: int64(min(window, int(c.ServerReceiveMax))), wake: newSignal(),
	}
	for _, topic := range topics {
		t, err := newTemplate(topic, qos, size)
		if err != nil {
			return nil, err
		}
		p.tmpls = append(p.tmpls, t)
	}
	return p, nil
}

// Wake re-evaluates Gate; subscribers call it when deliveries progress.
func (p *Publisher) Wake() { p.wake.notify() }

// Acked returns the number of acknowledged QoS 1 messages.
func (p *Publisher) Acked() int64 { return p.acked.Load() }

// Rejected returns the number of PUBACKs with an error reason code.
func (p *Publisher) Rejected() int64 { return p.rejected.Load() }

// Handlers returns the Consume handlers that count PUBACKs.
func (p *Publisher) Handlers() Handlers {
	return Handlers{OnPuback: func(_ uint16, code packet.ReasonCode) {
		if code.IsError() {
			p.rejected.Add(1)
		}
		p.acked.Add(1)
		p.wake.notify()
	}}
}

// Run sends n messages, then (QoS 1) waits for all acknowledgements.
// The client's Consume loop must be running with p.Handlers().
func (p *Publisher) Run(ctx context.Context, n int) error {
	buffered := 0
	for i := range int64(n) {
		if err := p.waitTurn(ctx, i); err != nil {
			return err
		}
		b := p.encode(uint32(i))
		if err := p.c.WriteRaw(b, false); err != nil {
			return err
		}
		p.sent.Add(1)
		if buffered += len(b); buffered >= flushBytes {
			if err := p.c.Flush(); err != nil {
				return err
			}
			buffered = 0
		}
	}
	if err := p.c.Flush(); err != nil {
		return err
	}
	return p.waitAcked(ctx, int64(n))
}

// waitTurn blocks until the ack window and the Gate allow message i,
// flushing first so the broker sees what it must answer.
func (p *Publisher) waitTurn(ctx context.Context, i int64) error {
	flushed := false
	for !p.mayProceed(i) {
		if !flushed {
			if err := p.c.Flush(); err != nil {
				return err
			}
			flushed = true
		}
		if err := p.wake.wait(ctx); err != nil {
			return fmt.Errorf("publisher %d at message %d: %w", p.index, i, err)
		}
	}
	return nil
}

func (p *Publisher) mayProceed(i int64) bool {
	if p.qos > 0 && i-p.acked.Load() >= p.window {
		return false
	}
	return p.Gate == nil || p.Gate(i)
}

func (p *Publisher) waitAcked(ctx context.Context, n int64) error {
	if p.qos == 0 {
		return nil
	}
	for p.acked.Load() < n {
		if err := p.wake.wait(ctx); err != nil {
			return fmt.Errorf("publisher %d: %d of %d acknowledged: %w", p.index, p.acked.Load(), n, err)
		}
	}
	return nil
}

// encode stamps the next template with a packet ID, the time and seq.
func (p *Publisher) encode(seq uint32) []byte {
	t := &p.tmpls[int(seq)%len(p.tmpls)]
	if p.qos > 0 {
		p.nextID++
		if p.nextID == 0 {
			p.nextID = 1
		}
		binary.BigEndian.PutUint16(t.b[t.idOff:], p.nextID)
	}
	pl := t.b[t.payOff:]
	binary.BigEndian.PutUint64(pl[offTime:], uint64(time.Now().UnixNano()))
	binary.BigEndian.PutUint32(pl[offPub:], p.index)
	binary.BigEndian.PutUint32(pl[offSeq:], seq)
	return t.b
}

// stamp decodes a payload header.
func stamp(payload []byte) (sent time.Time, pub, seq uint32, ok bool) {
	if len(payload) < minLength {
		return time.Time{}, 0, 0, false
	}
	ns := int64(binary.BigEndian.Uint64(payload[offTime:]))
	return time.Unix(0, ns), binary.BigEndian.Uint32(payload[offPub:]),
		binary.BigEndian.Uint32(payload[offSeq:]), true
}
