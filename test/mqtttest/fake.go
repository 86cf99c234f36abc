package mqtttest

import (
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/packets"
)

// Redirector is a fake MQTT 5.0 server, on 127.0.0.1, that sends every
// client elsewhere, as a cluster's followers do: it answers each CONNECT
// with a CONNACK carrying ReasonCode (0x9C Use another server, say) and a
// Server Reference, and closes the connection. With AfterConnect, it
// accepts the CONNECT first (CONNACK 0x00) and then sends DISCONNECT with
// ReasonCode and the reference, as a leader handing over does.
type Redirector struct {
	ReasonCode   byte
	AfterConnect bool

	ln       net.Listener
	ref      atomic.Pointer[string]
	connects atomic.Int64
	wg       sync.WaitGroup
}

// StartRedirector listens on a free 127.0.0.1 port and refers clients to
// ref (any string: tests send hostile ones too).
func StartRedirector(reasonCode byte, ref string, afterConnect bool) (*Redirector, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("mqtttest: %w", err)
	}
	r := &Redirector{ReasonCode: reasonCode, AfterConnect: afterConnect, ln: ln}
	r.ref.Store(&ref)
	r.wg.Add(1)
	go r.serve()
	return r, nil
}

// Addr is where the redirector listens.
func (r *Redirector) Addr() string { return r.ln.Addr().String() }

// SetReference changes the Server Reference sent from now on.
func (r *Redirector) SetReference(ref string) { r.ref.Store(&ref) }

// Connects counts the CONNECT packets answered.
func (r *Redirector) Connects() int64 { return r.connects.Load() }

// Close stops listening and waits for the connections being answered.
func (r *Redirector) Close() error {
	err := r.ln.Close()
	r.wg.Wait()
	return err
}

func (r *Redirector) serve() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer c.Close()
			r.answer(c)
		}()
	}
}

// maxConnect bounds the CONNECT the redirector reads.
const maxConnect = 64 << 10

func (r *Redirector) answer(c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	p, err := packets.ReadPacket(io.LimitReader(c, maxConnect))
	if err != nil || p.Type != packets.CONNECT {
		return
	}
	r.connects.Add(1)
	props := &packets.Properties{ServerReference: *r.ref.Load()}
	if !r.AfterConnect {
		_, _ = (&packets.Connack{ReasonCode: r.ReasonCode, Properties: props}).WriteTo(c)
		return
	}
	if _, err := (&packets.Connack{Properties: &packets.Properties{}}).WriteTo(c); err != nil {
		return
	}
	_, _ = (&packets.Disconnect{ReasonCode: r.ReasonCode, Properties: props}).WriteTo(c)
	// Linger until the client hangs up, so it reads the DISCONNECT
	// before the close.
	_, _ = io.Copy(io.Discard, io.LimitReader(c, maxConnect))
}
