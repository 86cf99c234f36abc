package topic

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxLen is the longest topic name or filter in bytes: it travels as an MQTT
// UTF-8 string with a two-byte length prefix [MQTT-4.7.3-3].
const MaxLen = 65535

// SharePrefix starts every shared subscription filter [MQTT-4.8.2-1].
const SharePrefix = "$share/"

// Sentinel errors returned (possibly wrapped) by the validation functions.
// Test for them with errors.Is.
var (
	// ErrEmpty: topic names and filters are at least one character long [MQTT-4.7.3-1].
	ErrEmpty = errors.New("topic: empty")
	// ErrTooLong: longer than MaxLen bytes [MQTT-4.7.3-3].
	ErrTooLong = errors.New("topic: longer than 65535 bytes")
	// ErrInvalidUTF8: not well-formed UTF-8 [MQTT-1.5.3-1].
	ErrInvalidUTF8 = errors.New("topic: invalid UTF-8")
	// ErrNullChar: contains U+0000 [MQTT-4.7.3-2].
	ErrNullChar = errors.New("topic: contains U+0000")
	// ErrWildcardInName: a topic name contains '+' or '#' [MQTT-4.7.1-1].
	ErrWildcardInName = errors.New("topic: wildcard in topic name")
	// ErrMultiLevelWildcard: '#' is not alone in the last level [MQTT-4.7.1-2].
	ErrMultiLevelWildcard = errors.New("topic: '#' must be the whole last level")
	// ErrSingleLevelWildcard: '+' does not occupy a whole level [MQTT-4.7.1-3].
	ErrSingleLevelWildcard = errors.New("topic: '+' must be a whole level")
	// ErrShareName: the share name of a shared subscription is empty or
	// contains '+' or '#' [MQTT-4.8.2-1] [MQTT-4.8.2-2].
	ErrShareName = errors.New("topic: invalid share name")
	// ErrShareNoFilter: "$share/{group}" is not followed by "/" and a topic
	// filter [MQTT-4.8.2-2].
	ErrShareNoFilter = errors.New("topic: shared subscription without topic filter")
)

// ValidateName reports whether s may be used as the topic name of a PUBLISH
// (or of a will message). The error wraps one of the sentinel errors.
func ValidateName(s string) error {
	if err := validateCommon(s); err != nil {
		return err
	}
	// [MQTT-4.7.1-1] [MQTT-3.3.2-2]
	if i := strings.IndexAny(s, "+#"); i >= 0 {
		return fmt.Errorf("%w: %q at byte %d", ErrWildcardInName, s[i], i)
	}
	return nil
}

// ValidateFilter reports whether s is a syntactically valid topic filter.
// A "$share/..." filter is checked as a plain filter here; use ParseShared to
// validate the shared subscription form. The error wraps one of the sentinel
// errors.
func ValidateFilter(s string) error {
	if err := validateCommon(s); err != nil {
		return err
	}
	start := 0
	for start <= len(s) {
		end := strings.IndexByte(s[start:], '/')
		last := end < 0
		if last {
			end = len(s)
		} else {
			end += start
		}
		if err := validateLevel(s[start:end], start, last); err != nil {
			return err
		}
		start = end + 1
	}
	return nil
}

// validateLevel checks one level of a filter; off is its byte offset.
func validateLevel(level string, off int, last bool) error {
	if i := strings.IndexByte(level, '#'); i >= 0 {
		// [MQTT-4.7.1-2] '#' on its own, in the last level only.
		if level != "#" || !last {
			return fmt.Errorf("%w: at byte %d", ErrMultiLevelWildcard, off+i)
		}
	}
	if i := strings.IndexByte(level, '+'); i >= 0 && level != "+" {
		// [MQTT-4.7.1-3] '+' occupies an entire level.
		return fmt.Errorf("%w: at byte %d", ErrSingleLevelWildcard, off+i)
	}
	return nil
}

// validateCommon applies the rules shared by names and filters.
func validateCommon(s string) error {
	switch {
	case s == "": // [MQTT-4.7.3-1]
		return ErrEmpty
	case len(s) > MaxLen: // [MQTT-4.7.3-3]
		return fmt.Errorf("%w: %d bytes", ErrTooLong, len(s))
	case !utf8.ValidString(s): // [MQTT-1.5.3-1]
		return ErrInvalidUTF8
	}
	if i := strings.IndexByte(s, 0); i >= 0 { // [MQTT-4.7.3-2] [MQTT-1.5.3-2]
		return fmt.Errorf("%w: at byte %d", ErrNullChar, i)
	}
	return nil
}

// ParseShared splits a shared subscription filter "$share/{group}/{filter}"
// into its share name and inner filter, validating both.
//
// A filter that does not start with "$share/" is not shared: ParseShared
// returns ("", filter, false, nil) for it without validating it (use
// ValidateFilter). Whether "$share/" is special at all for MQTT 3.1.1 clients
// is the caller's decision; the Trie always treats it as shared.
func ParseShared(filter string) (group, inner string, shared bool, err error) {
	if !strings.HasPrefix(filter, SharePrefix) {
		return "", filter, false, nil
	}
	rest := filter[len(SharePrefix):]
	group, inner, ok := strings.Cut(rest, "/")
	if group == "" { // [MQTT-4.8.2-1]
		return "", "", true, fmt.Errorf("%w: empty in %q", ErrShareName, filter)
	}
	if strings.ContainsAny(group, "+#") { // [MQTT-4.8.2-2]
		return "", "", true, fmt.Errorf("%w: %q contains a wildcard", ErrShareName, group)
	}
	if !ok || inner == "" { // [MQTT-4.8.2-2]
		return "", "", true, fmt.Errorf("%w: %q", ErrShareNoFilter, filter)
	}
	if err := ValidateFilter(filter); err != nil {
		// Validates length, UTF-8 and U+0000 of the whole string, and the
		// wildcard rules of the inner filter (the group has none).
		return "", "", true, err
	}
	return group, inner, true, nil
}

// IsWildcard reports whether filter contains '+' or '#'.
func IsWildcard(filter string) bool {
	return strings.ContainsAny(filter, "+#")
}

// ErrLimit: a topic name or filter longer or deeper than the configured
// Limits. It is well-formed MQTT; the broker just does not accept it.
var ErrLimit = errors.New("topic: beyond the configured limits")

// Limits bound the topic names and filters a broker accepts, below what the
// protocol allows (MaxLen bytes, any number of levels). Each level costs a
// node in the subscription trie or the retained tree, so a 64 KB topic of
// 32,768 empty levels costs far more memory than its bytes. A zero field
// means no limit.
type Limits struct {
	// MaxLen is the most bytes of a topic name or of a whole filter
	// (including a "$share/{group}/" prefix).
	MaxLen int
	// MaxLevels is the most levels: separators plus one. The levels of a
	// shared subscription count those of its inner filter only.
	MaxLevels int
}

// Check reports whether s, a topic name or filter, is within l; the error
// wraps ErrLimit. It does not validate s otherwise.
func (l Limits) Check(s string) error {
	if l.MaxLen > 0 && len(s) > l.MaxLen {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrLimit, len(s), l.MaxLen)
	}
	if l.MaxLevels <= 0 {
		return nil
	}
	if strings.HasPrefix(s, SharePrefix) {
		if _, inner, ok := strings.Cut(s[len(SharePrefix):], "/"); ok {
			s = inner
		}
	}
	// Counting stops at the limit, so a long topic is not scanned twice.
	levels := 1
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			if levels++; levels > l.MaxLevels {
				return fmt.Errorf("%w: more than %d levels", ErrLimit, l.MaxLevels)
			}
		}
	}
	return nil
}
