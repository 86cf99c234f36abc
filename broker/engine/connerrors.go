package engine

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bollard-io/bollard/broker/lograte"
	"github.com/bollard-io/bollard/broker/packet"
)

// Why connections ended in error (Stats.ConnectionErrors,
// bollard_connection_errors_total{reason}). A client that closes its
// connection or resets it is not an error of these: a TCP health check
// does so, and so does a device that loses its network.
const (
	// ConnErrConnectTimeout: no CONNECT within limits.connectTimeout
	// (something that opens connections and says nothing: a port scan, a
	// client stuck before its first packet).
	ConnErrConnectTimeout = "connect_timeout"
	// ConnErrConnectInvalid: the first packet is not a CONNECT, or does not
	// decode (not MQTT at all, a protocol version the broker does not
	// speak, a CONNECT over a limit).
	ConnErrConnectInvalid = "connect_invalid"
	// ConnErrConnectFailed: reading the first packet failed otherwise; on
	// a TLS listener, the handshake (a plain client on the TLS port, a
	// client certificate that does not verify); on a WebSocket listener,
	// the upgrade (the host hands the engine a connection whose first
	// Read fails with why).
	ConnErrConnectFailed = "connect_failed"
	// ConnErrProtocol: after CONNECT, a packet that does not decode or
	// breaks the protocol (answered with DISCONNECT and its reason code
	// where the version has one).
	ConnErrProtocol = "protocol_error"
	// ConnErrKeepAlive: a client silent for 1.5 x its keep alive.
	ConnErrKeepAlive = "keep_alive_timeout"
)

// connErr indexes the reasons (the ConnErr* names, in their order): the
// counters of connErrors.n and the names of connErrReasons.
type connErr int

const (
	connErrTimeout connErr = iota
	connErrInvalid
	connErrFailed
	connErrProto
	connErrSilent
	numConnErrs
	notConnErr connErr = -1 // the client closed or reset the connection
)

// connErrReasons are the reasons' names, by connErr.
var connErrReasons = [numConnErrs]string{ConnErrConnectTimeout, ConnErrConnectInvalid, ConnErrConnectFailed, ConnErrProtocol, ConnErrKeepAlive}

// connErrLogEvery is how often a connection error of one reason is logged
// at most (with the number left out since): one client, or a fleet that
// lost its network, can make thousands a second.
const connErrLogEvery = 10 * time.Second

// connErrors counts connection errors by reason and logs them, limited.
type connErrors struct {
	n   [numConnErrs]atomic.Uint64
	lim lograte.Limiter
}

func newConnErrors() *connErrors {
	return &connErrors{lim: lograte.Limiter{Every: connErrLogEvery}}
}

// add counts an error of reason i and logs it (limited) with err and attrs.
func (e *connErrors) add(log *slog.Logger, now time.Time, i connErr, err error, attrs ...any) {
	e.n[i].Add(1)
	ok, skipped := e.lim.Allow(connErrReasons[i], now)
	if !ok {
		return
	}
	level := slog.LevelWarn
	if i == connErrTimeout || i == connErrSilent {
		level = slog.LevelInfo // what devices on bad networks do
	}
	log.Log(context.Background(), level, "connection error",
		append([]any{"reason", connErrReasons[i], "err", err, "unlogged_before", skipped}, attrs...)...)
}

func (e *connErrors) snapshot() map[string]uint64 {
	m := make(map[string]uint64, len(connErrReasons))
	for i, r := range connErrReasons {
		m[r] = e.n[i].Load()
	}
	return m
}

// connectErrReason classifies an error reading the first packet;
// notConnErr when the client closed or reset the connection.
func connectErrReason(err error) connErr {
	var ne net.Error
	var pe *packet.Error
	switch {
	case clientGone(err):
		return notConnErr
	case errors.As(err, &ne) && ne.Timeout():
		return connErrTimeout
	case errors.As(err, &pe):
		return connErrInvalid
	}
	return connErrFailed
}

// clientGone reports whether err says the client ended the connection.
func clientGone(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
