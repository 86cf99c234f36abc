package auth

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// ErrUsersFile is wrapped by every error about the content of a users file.
var ErrUsersFile = errors.New("auth: invalid users file")

// maxUsersLine bounds one line of a users file (a bcrypt hash is 60 bytes).
const maxUsersLine = 64 << 10

// Users is an immutable set of users with bcrypt password hashes.
//
// The users file format, one user per line:
//
//	# comment
//	alice:$2y$10$...
//
// A line is "username:hash" where hash is a bcrypt hash ($2a$, $2b$ or $2y$,
// as produced by htpasswd -B or mosquitto_passwd-compatible tools). The
// username is everything before the first ':' and must be non-empty and not
// start with '$' (reserved, see AnonymousUser). Lines that are blank or whose
// first non-space character is '#' are ignored; surrounding whitespace is
// trimmed. A username may appear once.
type Users struct {
	hashes map[string][]byte
	dummy  []byte // compared against for unknown users
}

// dummyHash is a bcrypt hash (cost 10, of a random password nobody knows)
// used to spend the same time on unknown users when the file is empty.
const dummyHash = "$2a$10$PVVlCPYwDITzXWh9l372POrhGcZfoKTQRmIlm8mkTCvhtEkyDdtWO"

// LoadUsers reads a users file.
func LoadUsers(path string) (*Users, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	defer f.Close()
	u, err := ParseUsers(f)
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return u, nil
}

// ParseUsers reads the users file format from r. Errors wrap ErrUsersFile
// and name the offending line number.
func ParseUsers(r io.Reader) (*Users, error) {
	u := &Users{hashes: make(map[string][]byte)}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxUsersLine)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' {
			continue
		}
		name, hash, err := parseUserLine(text)
		if err == nil {
			if _, dup := u.hashes[name]; dup {
				err = fmt.Errorf("duplicate user %q", name)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %w", ErrUsersFile, line, err)
		}
		u.hashes[name] = []byte(hash)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: after line %d: %w", ErrUsersFile, line, err)
	}
	u.dummy = u.pickDummy()
	return u, nil
}

// NewUsers builds Users from username -> bcrypt hash, validating like
// ParseUsers (for configurations that embed users rather than a file).
func NewUsers(hashes map[string]string) (*Users, error) {
	u := &Users{hashes: make(map[string][]byte, len(hashes))}
	for name, hash := range hashes {
		if _, _, err := parseUserLine(name + ":" + hash); err != nil {
			return nil, fmt.Errorf("%w: user %q: %w", ErrUsersFile, name, err)
		}
		u.hashes[name] = []byte(hash)
	}
	u.dummy = u.pickDummy()
	return u, nil
}

func parseUserLine(text string) (name, hash string, err error) {
	name, hash, ok := strings.Cut(text, ":")
	switch {
	case !ok:
		return "", "", errors.New(`expected "username:bcrypthash"`)
	case name == "":
		return "", "", errors.New("empty username")
	case strings.HasPrefix(name, "$"):
		return "", "", fmt.Errorf("username %q starts with '$' (reserved)", name)
	case strings.ContainsAny(name, "\x00\r\n"):
		return "", "", fmt.Errorf("username %q contains a control character", name)
	}
	if !strings.HasPrefix(hash, "$2a$") && !strings.HasPrefix(hash, "$2b$") &&
		!strings.HasPrefix(hash, "$2y$") {
		return "", "", fmt.Errorf("user %q: password hash is not bcrypt ($2a$, $2b$ or $2y$)", name)
	}
	if _, err := bcrypt.Cost([]byte(hash)); err != nil {
		return "", "", fmt.Errorf("user %q: malformed bcrypt hash: %w", name, err)
	}
	return name, hash, nil
}

// pickDummy returns the hash that unknown users are checked against: one of
// the users' own hashes with the most common cost, so that a failed login
// for an unknown user takes as long as one for a known user (the result of
// that comparison is discarded). Without users, a fixed cost-10 hash.
func (u *Users) pickDummy() []byte {
	byCost := map[int][]byte{}
	freq := map[int]int{}
	best := -1
	for _, h := range u.hashes {
		c, _ := bcrypt.Cost(h) // validated when parsed
		byCost[c] = h
		freq[c]++
		if best < 0 || freq[c] > freq[best] || (freq[c] == freq[best] && c > best) {
			best = c
		}
	}
	if best < 0 {
		return []byte(dummyHash)
	}
	return byCost[best]
}

// Authenticate reports whether password is the password of username. For
// an unknown username it still runs one bcrypt comparison, so timing does
// not reveal which usernames exist. A nil *Users knows nobody.
func (u *Users) Authenticate(username string, password []byte) bool {
	if u == nil {
		return false
	}
	hash, known := u.hashes[username]
	if !known {
		hash = u.dummy // spend the time anyway; the result is ignored
	}
	err := bcrypt.CompareHashAndPassword(hash, password)
	return known && err == nil
}

// Has reports whether username is a known user.
func (u *Users) Has(username string) bool {
	if u == nil {
		return false
	}
	_, ok := u.hashes[username]
	return ok
}

// Len returns the number of users.
func (u *Users) Len() int {
	if u == nil {
		return 0
	}
	return len(u.hashes)
}
