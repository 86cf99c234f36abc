package load

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/bollard-io/bollard/broker/packet"
)

// handshakeTimeout bounds CONNECT/CONNACK and SUBSCRIBE/SUBACK exchanges.
const handshakeTimeout = 10 * time.Second

// maxPacket is the largest packet the client accepts.
const maxPacket = 1 << 20

// ConnOptions are the CONNECT fields a scenario varies.
type ConnOptions struct {
	ClientID      string
	CleanStart    bool
	SessionExpiry uint32 // seconds; non-zero makes the session persistent
	ReceiveMax    uint16 // 0: the protocol default (65535)
}

// Client is a lean MQTT 5.0 client: one TCP connection, a buffered reader
// owned by whoever reads (handshakes first, then one Consume loop) and a
// buffered writer shared under a mutex. It keeps no session state: the
// scenarios count what they need.
type Client struct {
	conn net.Conn
	r    *bufio.Reader
	wmu  sync.Mutex
	w    *bufio.Writer
	buf  []byte // encode scratch, under wmu

	// SessionPresent is the CONNACK flag.
	SessionPresent bool
	// ServerReceiveMax is the server's Receive Maximum from CONNACK.
	ServerReceiveMax uint16
}

// Dial connects to addr and completes the MQTT 5.0 handshake.
func Dial(ctx context.Context, addr string, o ConnOptions) (*Client, error) {
	d := net.Dialer{Timeout: handshakeTimeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("load: dial %s: %w", addr, err)
	}
	c := &Client{
		conn: conn,
		r:    bufio.NewReaderSize(conn, 64<<10),
		w:    bufio.NewWriterSize(conn, 64<<10),
	}
	if err := c.handshake(o); err != nil {
		_ = conn.Close() // the handshake error is the one to report
		return nil, err
	}
	return c, nil
}

func (c *Client) handshake(o ConnOptions) error {
	cp := &packet.Connect{
		ProtocolVersion: packet.V5, CleanStart: o.CleanStart, ClientID: o.ClientID,
	}
	if o.SessionExpiry > 0 {
		cp.Properties.SessionExpiryInterval = &o.SessionExpiry
	}
	if o.ReceiveMax > 0 {
		cp.Properties.ReceiveMaximum = &o.ReceiveMax
	}
	p, err := c.roundTrip(cp)
	if err != nil {
		return err
	}
	ack, ok := p.(*packet.Connack)
	if !ok {
		return fmt.Errorf("load: %s: got %s, want CONNACK", o.ClientID, p.Type())
	}
	if ack.ReasonCode.IsError() {
		return fmt.Errorf("load: %s: CONNACK %s", o.ClientID, ack.ReasonCode)
	}
	c.SessionPresent = ack.SessionPresent
	c.ServerReceiveMax = 65535
	if rm := ack.Properties.ReceiveMaximum; rm != nil {
		c.ServerReceiveMax = *rm
	}
	return nil
}

// roundTrip writes p and reads the next packet, within handshakeTimeout.
func (c *Client) roundTrip(p packet.Packet) (packet.Packet, error) {
	if err := c.conn.SetDeadline(time.Now().Add(handshakeTimeout)); err != nil {
		return nil, fmt.Errorf("load: set deadline: %w", err)
	}
	if err := c.Send(p, true); err != nil {
		return nil, err
	}
	resp, err := packet.ReadPacket(c.r, packet.V5, maxPacket)
	if err != nil {
		return nil, fmt.Errorf("load: waiting for the answer to %s: %w", p.Type(), err)
	}
	if err := c.conn.SetDeadline(time.Time{}); err != nil {
		return nil, fmt.Errorf("load: clear deadline: %w", err)
	}
	return resp, nil
}

// Subscribe subscribes to filter at qos and waits for the SUBACK. Call it
// before Consume: it reads from the connection itself.
func (c *Client) Subscribe(filter string, qos byte) error {
	p, err := c.roundTrip(&packet.Subscribe{
		PacketID:      1,
		Subscriptions: []packet.Subscription{{Filter: filter, QoS: qos}},
	})
	if err != nil {
		return err
	}
	ack, ok := p.(*packet.Suback)
	if !ok {
		return fmt.Errorf("load: subscribe %s: got %s, want SUBACK", filter, p.Type())
	}
	if len(ack.ReasonCodes) != 1 || ack.ReasonCodes[0].IsError() || byte(ack.ReasonCodes[0]) != qos {
		return fmt.Errorf("load: subscribe %s: SUBACK %v", filter, ack.ReasonCodes)
	}
	return nil
}

// Send encodes p into the write buffer, flushing when flush is set.
func (c *Client) Send(p packet.Packet, flush bool) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	b, err := packet.Append(c.buf[:0], p, packet.V5)
	if err != nil {
		return fmt.Errorf("load: encode %s: %w", p.Type(), err)
	}
	c.buf = b
	if _, err := c.w.Write(b); err != nil {
		return fmt.Errorf("load: write %s: %w", p.Type(), err)
	}
	if flush {
		return c.flushLocked()
	}
	return nil
}

// WriteRaw appends already encoded bytes to the write buffer.
func (c *Client) WriteRaw(b []byte, flush bool) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if _, err := c.w.Write(b); err != nil {
		return fmt.Errorf("load: write: %w", err)
	}
	if flush {
		return c.flushLocked()
	}
	return nil
}

// Flush writes out whatever is buffered.
func (c *Client) Flush() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.flushLocked()
}

func (c *Client) flushLocked() error {
	if err := c.w.Flush(); err != nil {
		return fmt.Errorf("load: flush: %w", err)
	}
	return nil
}

// Handlers receive what Consume reads. Either may be nil.
type Handlers struct {
	// OnPublish sees every PUBLISH; its payload is only valid during the
	// call. Consume acknowledges QoS 1 and 2 messages after it returns
	// (PUBACK; PUBREC, then PUBCOMP for the server's PUBREL).
	OnPublish func(p *packet.Publish)
	// OnPuback sees the end of each of our QoS 1 and 2 publishes: a
	// PUBACK, a PUBCOMP, or a PUBREC with an error code (which ends the
	// exchange). Consume answers a successful PUBREC with PUBREL itself.
	OnPuback func(id uint16, code packet.ReasonCode)
}

// Consume reads packets until the connection closes or ctx ends,
// acknowledging QoS 1 messages in batches: acks are flushed whenever the
// read buffer runs dry. It returns nil when ctx ended or the connection
// was closed locally.
func (c *Client) Consume(ctx context.Context, h Handlers) error {
	stop := context.AfterFunc(ctx, func() { _ = c.conn.SetReadDeadline(time.Now()) })
	defer stop()
	err := c.consume(h)
	if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

func (c *Client) consume(h Handlers) error {
	for {
		p, err := packet.ReadPacket(c.r, packet.V5, maxPacket)
		if err != nil {
			return fmt.Errorf("load: read: %w", err)
		}
		if err := c.dispatch(p, h); err != nil {
			return err
		}
		if c.r.Buffered() == 0 {
			if err := c.Flush(); err != nil {
				return err
			}
		}
	}
}

func (c *Client) dispatch(p packet.Packet, h Handlers) error {
	switch p := p.(type) {
	case *packet.Publish:
		if h.OnPublish != nil {
			h.OnPublish(p)
		}
		switch p.QoS {
		case 1:
			return c.Send(&packet.Puback{PacketID: p.PacketID}, false)
		case 2:
			return c.Send(&packet.Pubrec{PacketID: p.PacketID}, false)
		}
	case *packet.Pubrel:
		return c.Send(&packet.Pubcomp{PacketID: p.PacketID}, false)
	case *packet.Pubrec:
		if p.ReasonCode.IsError() {
			h.ended(p.PacketID, p.ReasonCode)
			return nil
		}
		return c.Send(&packet.Pubrel{PacketID: p.PacketID}, false)
	case *packet.Puback:
		h.ended(p.PacketID, p.ReasonCode)
	case *packet.Pubcomp:
		h.ended(p.PacketID, p.ReasonCode)
	case *packet.Disconnect:
		return fmt.Errorf("load: server sent DISCONNECT %s", p.ReasonCode)
	}
	return nil
}

func (h Handlers) ended(id uint16, code packet.ReasonCode) {
	if h.OnPuback != nil {
		h.OnPuback(id, code)
	}
}

// Disconnect sends DISCONNECT (normal) and closes the connection.
func (c *Client) Disconnect() error {
	err := c.Send(&packet.Disconnect{}, true)
	if cerr := c.conn.Close(); err == nil && cerr != nil && !errors.Is(cerr, net.ErrClosed) {
		err = fmt.Errorf("load: close: %w", cerr)
	}
	return err
}

// Close closes the connection without DISCONNECT.
func (c *Client) Close() error {
	if err := c.conn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("load: close: %w", err)
	}
	return nil
}
