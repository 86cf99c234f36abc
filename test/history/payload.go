package history

import (
	"errors"
	"fmt"
	"strconv"
)

// Payload format: "pub-<id>/<seq>", where id is 1 to MaxIDLen bytes of
// [A-Za-z0-9._-] and seq the decimal sequence number, without sign or
// leading zeros. Nothing else is part of a payload.

// MaxIDLen is the longest publisher ID.
const MaxIDLen = 64

// maxPayload is the longest valid payload: prefix, ID, slash, 20 digits.
const maxPayload = len("pub-") + MaxIDLen + 1 + 20

// ErrMalformed is the error of Decode, and of a bad publisher ID.
var ErrMalformed = errors.New("history: malformed")

// ValidID reports whether id can name a publisher.
func ValidID(id string) error {
	if id == "" || len(id) > MaxIDLen {
		return fmt.Errorf("%w: publisher ID of %d bytes (1 to %d)", ErrMalformed, len(id), MaxIDLen)
	}
	for i := range len(id) {
		if !idByte(id[i]) {
			return fmt.Errorf("%w: publisher ID %q: byte %q not in [A-Za-z0-9._-]", ErrMalformed, id, id[i])
		}
	}
	return nil
}

func idByte(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '.' || b == '_' || b == '-'
}

// Encode is the payload of message seq of publisher id.
func Encode(id string, seq uint64) ([]byte, error) {
	if err := ValidID(id); err != nil {
		return nil, err
	}
	b := make([]byte, 0, maxPayload)
	b = append(b, "pub-"...)
	b = append(b, id...)
	b = append(b, '/')
	return strconv.AppendUint(b, seq, 10), nil
}

// Decode reads a payload written by Encode. Any other input is an error
// wrapping ErrMalformed.
func Decode(b []byte) (id string, seq uint64, err error) {
	if len(b) > maxPayload || len(b) < len("pub-x/0") || string(b[:4]) != "pub-" {
		return "", 0, fmt.Errorf("%w payload %s", ErrMalformed, quote(b))
	}
	slash := -1
	for i := 4; i < len(b); i++ {
		if b[i] == '/' {
			slash = i
			break
		}
		if !idByte(b[i]) {
			return "", 0, fmt.Errorf("%w payload %s", ErrMalformed, quote(b))
		}
	}
	if slash < 5 || slash-4 > MaxIDLen {
		return "", 0, fmt.Errorf("%w payload %s", ErrMalformed, quote(b))
	}
	digits := b[slash+1:]
	seq, perr := strconv.ParseUint(string(digits), 10, 64)
	if perr != nil || len(digits) == 0 || (digits[0] == '0' && len(digits) > 1) {
		return "", 0, fmt.Errorf("%w payload %s", ErrMalformed, quote(b))
	}
	return string(b[4:slash]), seq, nil
}

// quote shows at most 64 bytes of a payload.
func quote(b []byte) string {
	if len(b) > 64 {
		return strconv.Quote(string(b[:64])) + fmt.Sprintf("... (%d bytes)", len(b))
	}
	return strconv.Quote(string(b))
}
