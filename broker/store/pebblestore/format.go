package pebblestore

// On-disk format, version 2.
//
// The store is one Pebble database (the directory passed to Open). Every
// key starts with a short ASCII family prefix; integers inside keys are
// big-endian so that byte order is numeric order. Client IDs may not
// contain a NUL byte (MQTT forbids U+0000 in strings [MQTT-1.5.4-2]; Commit
// rejects such IDs), so NUL ends the client ID inside a key.
//
//	meta/version                  format version: big-endian uint32 (2)
//	meta/msgid                    message ID high-water mark: big-endian uint64;
//	                              every ID ever committed is below it
//	meta/applied                  replicated stores: last applied log index, term (replica.go)
//	meta/clusterformat            replicated stores: the log entry format the cluster
//	                              agreed on, one byte (clusterformat.go); absent: 1
//	s/<clientID>                  session
//	u/<clientID>\x00<filter>      subscription
//	q/<clientID>\x00<seq be64>    queue run: entries with Seq >= seq, up to the next run
//	l/<clientID>                  queue LastSeq floor (see below)
//	i/<clientID>\x00<pid be16>    inbound QoS 2 packet ID awaiting PUBREL
//	m/<messageID be64>            message with several references, stored once
//	c/<messageID be64>            reference count of an m/ message: how many entries name it
//	r/<topic>                     retained message
//
// Values start with a one-byte value version (1), then fields in order:
//
//	uvarint  unsigned LEB128 (encoding/binary)
//	str      uvarint length, bytes
//	time     one byte 0 (zero time) or 1 followed by a zig-zag varint of UnixNano
//	flags    one byte of bits
//
//	session       str principal, byte protocol, uvarint expiry, time created,
//	              time disconnected, byte hasWill, [uvarint delay, message]
//	subscription  byte qos, flags (1 noLocal, 2 retainAsPublished),
//	              byte retainHandling, uvarint subscription ID
//	queue run     uvarint n (>= 1), n x entry:
//	              uvarint Seq delta (from the previous entry's Seq; the first
//	              entry's from the key's seq, may be 0; later ones >= 1),
//	              flags (1 retain, 2 inline), byte qos, byte state,
//	              uvarint packetID, uvarint k, k x uvarint subscription ID,
//	              uvarint messageID, uvarint message size,
//	              [inline: str message (the message fields below)]
//	l/ floor      uvarint LastSeq
//	inbound       (version byte only)
//	refcount      uvarint references, uvarint message size
//	message (m/, r/, inline, and inside a session's will):
//	              uvarint ID, str publisher, str topic, str payload, byte qos,
//	              flags (1 retain, 2 payload format present), [byte payload format],
//	              str content type, str response topic, str correlation data,
//	              uvarint n, n x (str key, str value), time published, time expires
//
// Decoding checks every length against the bytes left before allocating;
// a value that does not decode is reported as an error wrapping
// store.ErrCorrupt that names its key, never a panic.
//
// Why runs: a publish fanned out to N offline sessions, or a drain of one
// session, must not cost a Pebble key per entry (flushing and compacting
// those keys was most of the CPU of both). A commit writes the entries it
// appends to a session as one run (split at maxRunEntries/maxRunBytes),
// so a group commit of G publishes to N sessions writes N runs, not G x N
// keys. A commit that changes or removes entries rewrites (or deletes)
// each run it touches once. Runs never overlap: a run's key seq is at
// most its first entry's Seq (entries removed from the front leave the
// key) and above the last Seq of the run before it.
//
// Why inline messages: every reference to a message is created in the
// batch that puts it (store.OpEnqueue), so the batch knows whether a
// message has one reference. Such a message is stored inside its entry:
// no m/ and c/ keys to write and then delete. Messages with several
// references are stored once under m/ with a c/ count.
//
// Why persisted reference counts (c/ keys) rather than counts rebuilt on
// open: memory must not grow with the number of queued messages, and a
// commit needs the count of every message it touches. A c/ key is read
// only by the commits that touch its message and rewritten once per
// commit however many entries of the batch name it. Open still scans
// every q/ and c/ key to rebuild per-session QueueStats and the store
// Stats, and refuses a store whose counts do not add up.
//
// Why the l/ floor: QueueStats.LastSeq must survive the dequeue of the
// tail entry. It is max(l/ floor, highest Seq in a run); the floor is
// written only by a commit that removes the entry at LastSeq (typically
// when a queue drains), not by every enqueue.
//
// Why meta/msgid is a reservation: a commit that stores a message with an
// ID at or above the mark raises it to ID+idReserve, so the mark is
// written once per idReserve messages. Open resumes NextMessageID at the
// mark, and Close writes the exact counter, so IDs only grow, across
// restarts too. After a crash, IDs handed out but never committed may be
// issued again; nothing durable ever named them.
//
// Format 1 (one q/ key per entry, every message under m/) is not read:
// it was written only by development builds before the first release.

import (
	"encoding/binary"
	"fmt"

	"github.com/bollard-io/bollard/broker/store"
)

const (
	// formatVersion is the value of meta/version this code writes and reads.
	formatVersion = 2
	// valueVersion is the first byte of every value.
	valueVersion = 1
	// idReserve is how far meta/msgid runs ahead of committed IDs.
	idReserve = 1 << 12
)

var (
	keyVersion = []byte("meta/version")
	keyMsgID   = []byte("meta/msgid")
)

// Key family prefixes.
const (
	pSession  = "s/"
	pSub      = "u/"
	pQueue    = "q/"
	pFloor    = "l/"
	pInbound  = "i/"
	pMessage  = "m/"
	pRefCount = "c/"
	pRetained = "r/"
)

func sessionKey(clientID string) []byte { return append([]byte(pSession), clientID...) }
func floorKey(clientID string) []byte   { return append([]byte(pFloor), clientID...) }
func retainedKey(topic string) []byte   { return append([]byte(pRetained), topic...) }

// clientPrefix is "<family><clientID>\x00", the start of the client's keys
// in a per-client family.
func clientPrefix(family, clientID string) []byte {
	k := make([]byte, 0, len(family)+len(clientID)+9)
	return append(append(append(k, family...), clientID...), 0)
}

func subKey(clientID, filter string) []byte {
	return append(clientPrefix(pSub, clientID), filter...)
}

func queueKey(clientID string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(clientPrefix(pQueue, clientID), seq)
}

// appendQueueKey appends queueKey(clientID, seq) to dst.
func appendQueueKey(dst []byte, clientID string, seq uint64) []byte {
	dst = append(append(append(dst, pQueue...), clientID...), 0)
	return binary.BigEndian.AppendUint64(dst, seq)
}

func inboundKey(clientID string, pid uint16) []byte {
	return binary.BigEndian.AppendUint16(clientPrefix(pInbound, clientID), pid)
}

func messageKey(id uint64) []byte  { return binary.BigEndian.AppendUint64([]byte(pMessage), id) }
func refCountKey(id uint64) []byte { return binary.BigEndian.AppendUint64([]byte(pRefCount), id) }

// prefixEnd is the smallest key greater than every key starting with p.
func prefixEnd(p []byte) []byte {
	end := append([]byte{}, p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil // p is all 0xff: no upper bound
}

// corrupt reports a key whose value or shape is wrong.
func corrupt(key []byte, format string, args ...any) error {
	return fmt.Errorf("pebblestore: key %q: %s: %w", key, fmt.Sprintf(format, args...), store.ErrCorrupt)
}

// splitClientKey splits "<family><clientID>\x00<rest>" where rest has
// restLen bytes (or any length when restLen < 0).
func splitClientKey(key []byte, family string, restLen int) (clientID string, rest []byte, err error) {
	body := key[len(family):]
	var sep int
	if restLen >= 0 {
		sep = len(body) - restLen - 1
	} else {
		sep = indexByte(body, 0)
	}
	if sep < 0 || sep >= len(body) || body[sep] != 0 {
		return "", nil, corrupt(key, "malformed key")
	}
	return string(body[:sep]), body[sep+1:], nil
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// queueKeyParts returns the client ID and seq of a q/ key.
func queueKeyParts(key []byte) (string, uint64, error) {
	id, rest, err := splitClientKey(key, pQueue, 8)
	if err != nil {
		return "", 0, err
	}
	return id, binary.BigEndian.Uint64(rest), nil
}

// messageKeyID returns the ID of an m/ or c/ key.
func messageKeyID(key []byte) (uint64, error) {
	if len(key) != 2+8 {
		return 0, corrupt(key, "malformed key")
	}
	return binary.BigEndian.Uint64(key[2:]), nil
}
