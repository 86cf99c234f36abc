package engine

import (
	"net"

	"github.com/bollard-io/bollard/broker/packet"
)

// RefuseConn refuses the client on nc because this member does not serve
// MQTT clients now (the host's Role says so): it reads the CONNECT within
// limits.connectTimeout, answers it with CONNACK 0x9C Use another server
// carrying serverReference as its Server Reference (MQTT 5.0; 0x88 Server
// unavailable when serverReference is "") or return code 3 Server
// unavailable (3.1, 3.1.1), and closes nc. It authenticates nobody,
// touches no session and needs no Start. Every connection it refuses is
// counted under LimitNotServing; at most as many wait for their CONNECT
// here as ServeConn holds open (limits.maxConnections and a quarter more),
// the others are closed at once. Like ServeConn, it returns when nc is
// closed, and listeners call it in a goroutine of its own.
func (s *Server) RefuseConn(nc net.Conn, serverReference string) {
	defer nc.Close()
	limit := int64(openConnLimit(s.config().Limits.MaxConnections))
	if n := s.refusing.Add(1); limit > 0 && n > limit {
		s.refusing.Add(-1)
		s.refused.add(s.log, LimitNotServing, "remote", nc.RemoteAddr().String())
		return
	}
	defer s.refusing.Add(-1)
	c := s.newConn(nc)
	c.refusal(LimitNotServing)
	cp := c.readConnect()
	if cp == nil {
		return
	}
	c.version, c.clientID = cp.ProtocolVersion, cp.ClientID
	ack := &packet.Connack{ReasonCode: packet.ServerUnavailable}
	if serverReference != "" {
		ack.ReasonCode, ack.Properties.ServerReference = packet.UseAnotherServer, &serverReference
	}
	c.sendRefusal(ack)
}
