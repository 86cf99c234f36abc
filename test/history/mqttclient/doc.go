// Package mqttclient drives MQTT 5.0 clients (github.com/eclipse/paho.golang,
// through test/mqtttest) that record what they do in a history.Recorder:
//
//   - Publisher publishes numbered messages ("pub-<id>/<seq>", seq from 1)
//     to one topic at one QoS, one at a time (a window of 1), records each
//     attempt before it is written and its outcome after (Acked, Failed on
//     a reason code of 0x80 or more, Unknown on no answer), and reconnects
//     with clean start whenever the connection is lost. A sequence number
//     is never sent twice: after an Unknown outcome the next attempt has
//     the next number.
//   - Subscriber holds a persistent session (session expiry > 0; clean
//     start on creation, clean start false afterwards, with client-side
//     session state kept across connections so that QoS 2 stays exactly
//     once), declares its subscription to the Recorder when the SUBACK
//     arrives, records every delivery, reconnects when the connection is
//     lost, and goes offline and online on command. A reconnect that finds
//     no session (session present = false) is recorded as a SessionLost
//     anomaly, and the subscription is made again.
//
// Both connect through an address list, trying each address in turn
// (the last one that worked first). A CONNACK 0x9C Use another server or
// 0x9D Server moved with a Server Reference is followed to the referenced
// address, and so is a DISCONNECT with those codes on the next connect,
// as a cluster's followers and a leader handing over send them. A Server
// Reference is "host:port" (the first of a space-separated list), and is
// followed only to a loopback IP literal (127.0.0.1): any other is refused
// and counted, so a test never dials off the machine. At most
// MaxRedirects references are followed in a row.
//
// Each client keeps its connections as Spans (address, up, down, whether
// the client or the server ended it, the server's DISCONNECT reason code
// and reference), so a test can count the disconnections a fault caused
// and how long each client went without a connection. A Publisher's
// attempts name the address they were written on (history.Attempt.Server).
package mqttclient
