package packet

import "errors"

// DecodeOptions bounds what one packet may make the decoder allocate,
// beyond the protocol's own limits. A zero field means no limit.
//
// User properties are the reason: each costs 5 bytes on the wire but a
// UserProperty (two string headers, 32 bytes) plus its strings in memory,
// so a 1 MiB PUBLISH of empty user properties would decode to ~7 MiB of
// heap. The limits apply to each property block separately (a CONNECT's
// Will Properties are their own block) and are checked before the pair is
// allocated.
type DecodeOptions struct {
	// MaxUserProperties is the most User Properties in one block.
	MaxUserProperties int
	// MaxUserPropertyBytes is the most bytes the User Properties of one
	// block may take on the wire (identifier, both lengths, key, value).
	MaxUserPropertyBytes int
}

// ErrUserPropertyLimit is in the chain of the error returned for a block
// beyond DecodeOptions' user property limits; the error's Reason Code is
// PacketTooLarge (the packet exceeds what this server accepts).
var ErrUserPropertyLimit = errors.New("user property limit exceeded")

// userLimits counts the user properties of one property block.
type userLimits struct {
	o            *DecodeOptions
	count, bytes int
}

// admit counts the user property that starts at b[i] (just after its
// identifier) and fails, before anything is allocated, when it would pass a
// limit. A pair that overruns b is left for the decoder to report.
func (u *userLimits) admit(t Type, b []byte, i int) error {
	if u.o == nil {
		return nil
	}
	u.count++
	if m := u.o.MaxUserProperties; m > 0 && u.count > m {
		return errorf(PacketTooLarge, "%s: more than %d user properties: %w", contextName(t), m, ErrUserPropertyLimit)
	}
	if m := u.o.MaxUserPropertyBytes; m > 0 {
		u.bytes += 1 + pairWireLen(b, i)
		if u.bytes > m {
			return errorf(PacketTooLarge, "%s: user properties exceed %d bytes: %w", contextName(t), m, ErrUserPropertyLimit)
		}
	}
	return nil
}

// pairWireLen returns the encoded length of the UTF-8 string pair at b[i],
// as far as b holds it (the decoder reports a truncated pair).
func pairWireLen(b []byte, i int) int {
	n := 0
	for range 2 {
		if i+2 > len(b) {
			return n + max(len(b)-i, 0)
		}
		l := 2 + (int(b[i])<<8 | int(b[i+1]))
		n += l
		i += l
	}
	return n
}
