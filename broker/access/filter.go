package access

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// This file holds the topic matching that ACLs need. It mirrors the rules of
// broker/topic (MQTT 3.1.1 section 4.7) but works on filters as well as
// names; access is a leaf (the operator imports it), so it keeps its own
// copy.

// maxLevels bounds the levels split onto the stack before spilling.
const maxLevels = 16

// splitLevels appends the levels of s to dst.
func splitLevels(dst []string, s string) []string {
	for {
		level, rest, more := strings.Cut(s, "/")
		dst = append(dst, level)
		if !more {
			return dst
		}
		s = rest
	}
}

func isDollar(level string) bool { return strings.HasPrefix(level, "$") }

// matches reports whether filter p matches topic name t (both as levels).
func matches(p, t []string) bool {
	if len(t) > 0 && isDollar(t[0]) && (p[0] == "+" || p[0] == "#") { // [MQTT-4.7.2-1]
		return false
	}
	for i, level := range p {
		if level == "#" {
			return true // matches the parent level too [MQTT-4.7.1-2]
		}
		if i >= len(t) || (level != "+" && level != t[i]) {
			return false
		}
	}
	return len(p) == len(t)
}

// covers reports whether every topic name that filter f matches is also
// matched by filter p.
func covers(p, f []string) bool {
	for i := 0; ; i++ {
		if i == len(p) {
			return i == len(f)
		}
		if p[i] == "#" {
			// Every remaining level, and none, except a leading '$'
			// level, which a leading '#' does not match [MQTT-4.7.2-1].
			return i > 0 || !isDollar(f[0])
		}
		if i == len(f) {
			return false
		}
		if f[i] == "#" {
			// f matches topics shorter ("a/#" matches "a") or longer than
			// p's remaining levels allow, except that a topic name has at
			// least one level, so "+/#" covers "#".
			return i == 0 && len(p) == 2 && p[0] == "+" && p[1] == "#"
		}
		switch {
		case p[i] == "+":
			if i == 0 && isDollar(f[i]) {
				return false
			}
		case p[i] != f[i]: // a literal covers only itself, not '+'
			return false
		}
	}
}

// overlaps reports whether some topic name is matched by both filters.
func overlaps(a, b []string) bool {
	for i := 0; ; i++ {
		switch {
		case i == len(a) && i == len(b):
			return true
		case i == len(a):
			return b[i] == "#" // "a/#" matches "a"
		case i == len(b):
			return a[i] == "#"
		}
		x, y := a[i], b[i]
		if x == "#" || y == "#" {
			// '#' takes whatever the other side needs from here on,
			// except a literal '$' first level [MQTT-4.7.2-1].
			return i > 0 || (!isLiteralDollar(x) && !isLiteralDollar(y))
		}
		if !levelsOverlap(i, x, y) {
			return false
		}
	}
}

// isLiteralDollar reports whether level is a literal starting with '$'.
func isLiteralDollar(level string) bool { return isLiteral(level) && isDollar(level) }

// levelsOverlap reports whether two non-'#' levels at index i can match the
// same topic level. A '+' first level never matches a '$' topic.
func levelsOverlap(i int, x, y string) bool {
	switch {
	case x == "+" && y == "+":
		return true
	case x == "+":
		return i != 0 || !isDollar(y)
	case y == "+":
		return i != 0 || !isDollar(x)
	}
	return x == y
}

func isLiteral(level string) bool { return level != "+" && level != "#" }

// errFilter is wrapped by validateFilter's errors.
var errFilter = errors.New("invalid topic filter")

// validateFilter checks the syntax of a topic filter (see broker/topic).
func validateFilter(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: empty", errFilter)
	case len(s) > 65535:
		return fmt.Errorf("%w: longer than 65535 bytes", errFilter)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: not UTF-8", errFilter)
	case strings.IndexByte(s, 0) >= 0:
		return fmt.Errorf("%w: contains a NUL character", errFilter)
	}
	levels := splitLevels(nil, s)
	for i, level := range levels {
		if strings.Contains(level, "#") && (level != "#" || i != len(levels)-1) {
			return fmt.Errorf("%w: '#' must fill the last level", errFilter)
		}
		if strings.Contains(level, "+") && level != "+" {
			return fmt.Errorf("%w: '+' must fill a whole level", errFilter)
		}
	}
	return nil
}

// innerFilter strips a "$share/{group}/" prefix; ok is false for a malformed
// shared subscription.
func innerFilter(filter string) (inner string, ok bool) {
	rest, shared := strings.CutPrefix(filter, "$share/")
	if !shared {
		return filter, true
	}
	group, inner, found := strings.Cut(rest, "/")
	if group == "" || !found || inner == "" || strings.ContainsAny(group, "+#") {
		return "", false
	}
	return inner, true
}

// CheckFilter checks the syntax of an MQTT topic filter (wildcards '+' and
// '#' allowed). A "$share/{group}/" prefix is not special here: it is
// checked as two literal levels.
func CheckFilter(s string) error { return validateFilter(s) }

// FilterCovers reports whether every topic name that filter matches is
// also matched by outer: "sensors/#" covers "sensors/+/temp" and
// "sensors/a", not "#" nor "+/temp". A shared subscription's filter
// ("$share/{group}/{f}") is taken as its inner filter f; a malformed one is
// covered by nothing. Both are assumed valid (CheckFilter).
func FilterCovers(outer, filter string) bool {
	inner, ok := innerFilter(filter)
	if !ok || outer == "" || inner == "" {
		return false
	}
	var pa, fa [maxLevels]string
	return covers(splitLevels(pa[:0], outer), splitLevels(fa[:0], inner))
}
