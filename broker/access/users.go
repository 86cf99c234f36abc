package access

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// The users file holds one user per line:
//
//	# comment
//	alice:$2y$10$...
//
// A line is "username:hash" where hash is a bcrypt hash ($2a$, $2b$ or $2y$,
// as `htpasswd -nbB` and mosquitto_passwd-compatible tools produce). The
// username is everything before the first ':'; it must be non-empty, must
// not start with '$' (reserved) and must not contain a control character.
// Lines that are blank or whose first non-space character is '#' are
// ignored; surrounding whitespace is trimmed. A username may appear once.

// MaxUsersLine bounds one line of a users file (a bcrypt hash is 60 bytes).
const MaxUsersLine = 64 << 10

// MaxBcryptCost is the highest bcrypt cost a users file may use. Each
// step doubles the CPU time of a password check (cost 10 takes about
// 90 ms of one core on a small machine, so 14 takes about 1.5 s), and a
// check, once it holds one of the `login.maxConcurrentChecks` slots,
// cannot be interrupted: one hash of the format's maximum cost (31)
// would let as many CONNECTs as there are slots stop every login for
// days. htpasswd -B hashes at cost 5 unless told otherwise (-C).
const MaxBcryptCost = 14

// ErrUsersFile is wrapped by every error about the content of a users file.
var ErrUsersFile = errors.New("access: invalid users file")

// UsersLineError is a problem with one line of a users file. Its message
// names the line number and never the line's content: a Secret's hash must
// not reach a log, an Event or a status.
type UsersLineError struct {
	Line int
	Msg  string
}

func (e *UsersLineError) Error() string { return fmt.Sprintf("line %d %s", e.Line, e.Msg) }

// Unwrap makes errors.Is(err, ErrUsersFile) true.
func (e *UsersLineError) Unwrap() error { return ErrUsersFile }

// ParseUsersFile parses a users file into username -> bcrypt hash. It
// returns every bad line, in order; the map holds the good ones.
func ParseUsersFile(data []byte) (map[string]string, []*UsersLineError) {
	users := map[string]string{}
	seen := map[string]int{}
	var bad []*UsersLineError
	for i, raw := range strings.Split(string(data), "\n") {
		n := i + 1
		if len(raw) > MaxUsersLine {
			bad = append(bad, &UsersLineError{n, fmt.Sprintf("is longer than %d bytes", MaxUsersLine)})
			continue
		}
		text := strings.TrimSpace(raw)
		if text == "" || text[0] == '#' {
			continue
		}
		name, hash, problem := ParseUserLine(text)
		if problem == "" {
			if first, dup := seen[name]; dup {
				problem = fmt.Sprintf("repeats the username of line %d", first)
			} else {
				seen[name] = n
			}
		}
		if problem != "" {
			bad = append(bad, &UsersLineError{n, problem})
			continue
		}
		users[name] = hash
	}
	return users, bad
}

// ParseUserLine splits a trimmed "username:hash" line; problem describes
// what is wrong with it ("" when nothing is), without quoting the line.
func ParseUserLine(text string) (name, hash, problem string) {
	name, hash, ok := strings.Cut(text, ":")
	switch {
	case !ok:
		return "", "", `is not "username:bcrypt-hash"`
	case name == "":
		return "", "", "has an empty username"
	case strings.HasPrefix(name, "$"):
		return "", "", "has a username starting with '$' (reserved)"
	case strings.ContainsFunc(name, IsControl):
		return "", "", "has a control character in the username"
	case !strings.HasPrefix(hash, "$2a$") && !strings.HasPrefix(hash, "$2b$") && !strings.HasPrefix(hash, "$2y$"):
		return "", "", "has a password hash that is not bcrypt ($2a$, $2b$ or $2y$; htpasswd -nbB makes one)"
	}
	cost, err := bcrypt.Cost([]byte(hash))
	if err != nil {
		return "", "", "has a malformed bcrypt hash"
	}
	if cost > MaxBcryptCost {
		return "", "", fmt.Sprintf("has a bcrypt cost of %d, above the maximum of %d (each step doubles the time of every login; htpasswd -nbB -C %d makes one)", cost, MaxBcryptCost, MaxBcryptCost)
	}
	return name, hash, ""
}

// IsControl reports whether r is a control character (C0 or DEL), which
// names and patterns that reach logs, statuses and rules may not hold.
func IsControl(r rune) bool { return r < 0x20 || r == 0x7f }

// maxUsersProblems bounds how many bad lines UsersFileError lists.
const maxUsersProblems = 5

// UsersFileError joins the first few line errors into one error wrapping
// ErrUsersFile (nil for none).
func UsersFileError(bad []*UsersLineError) error {
	if len(bad) == 0 {
		return nil
	}
	msgs := make([]string, 0, maxUsersProblems)
	for _, e := range bad[:min(len(bad), maxUsersProblems)] {
		msgs = append(msgs, e.Error())
	}
	s := strings.Join(msgs, "; ")
	if len(bad) > maxUsersProblems {
		s += fmt.Sprintf("; and %d more", len(bad)-maxUsersProblems)
	}
	return fmt.Errorf("%w: %s", ErrUsersFile, s)
}
