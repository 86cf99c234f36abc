package host

import "net"

// Role decides whether this member of a broker serves MQTT clients. The
// host asks it for every connection a listener accepts (one it does not
// serve goes to the engine's refusal, which hands the client the server
// reference) and for readiness (/readyz answers 503 while it does not
// serve, so a Service sends clients to a member that does). Replication
// implements it (only the leader serves); a broker without replicas uses
// Single. Serving must be cheap and safe for concurrent use.
type Role interface {
	// Serving reports whether this member serves MQTT clients now and, when
	// it does not, where a refused client should connect instead ("host:port",
	// the MQTT 5.0 Server Reference; "" when unknown).
	Serving() (serving bool, serverReference string)
}

// Single is the Role of a broker without replicas: it always serves.
type Single struct{}

// Serving reports true: a single broker serves its clients.
func (Single) Serving() (bool, string) { return true, "" }

// ConnRefuser refuses an accepted connection that this member does not
// serve, telling the client serverReference where it can. *engine.Server
// implements it. Like ServeConn, RefuseConn returns when the connection
// ends; the listeners call it from a goroutine of its own.
type ConnRefuser interface {
	RefuseConn(c net.Conn, serverReference string)
}

// roleGate is the ConnHandler the Runner gives its listeners: it hands a
// connection to the engine while the role serves, and to the engine's
// refusal otherwise.
type roleGate struct {
	role Role
	e    Engine
}

func (g roleGate) ServeConn(c net.Conn) {
	if ok, ref := g.role.Serving(); !ok {
		g.e.RefuseConn(c, ref)
		return
	}
	g.e.ServeConn(c)
}
