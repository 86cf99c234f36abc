// Package packet encodes and decodes MQTT control packets on the wire for
// MQTT 3.1 (protocol name "MQIsdp", level 3), 3.1.1 (level 4) and 5.0
// (level 5), including every 5.0 property and reason code.
//
// Its one responsibility is the byte format: it turns bytes into typed
// packets and typed packets into bytes, and rejects whatever the
// specifications call malformed or a protocol error with an *Error that
// carries the Reason Code a server should answer with. It does no network
// I/O of its own beyond reading from a caller's bufio.Reader and writing to a
// caller's io.Writer, keeps no session state, and imports no other package of
// this module. Topic filter syntax, topic alias mapping, receive maximum and
// other stateful rules belong to the broker packages above it.
//
// Each control packet type has its own struct (Connect, Connack, Publish,
// ...). Decoding goes through one dispatch point (Decode and ReadPacket);
// encoding is append-style: every packet has AppendTo(dst, version), and
// Write and Size wrap it. The version argument is always the negotiated
// protocol level (V31, V311 or V5); fields that a version cannot carry (for
// example 5.0 properties in 3.1.1) are ignored when encoding for that
// version.
//
// Decoded packets may alias the buffer they were decoded from (payloads,
// passwords, binary properties); ReadPacket allocates a fresh buffer for
// every packet, so its results are safe to keep.
package packet
