package auth

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/crypto/bcrypt"

	"github.com/bollard-io/bollard/broker/access"
)

// ErrUsersFile is wrapped by every error about the content of a users file
// (it is access.ErrUsersFile: the syntax is defined in broker/access).
var ErrUsersFile = access.ErrUsersFile

// maxUsersFile bounds the size of a users file.
const maxUsersFile = 64 << 20

// Users is an immutable set of users with bcrypt password hashes.
//
// The users file format is defined by broker/access (ParseUsersFile): one
// "username:bcrypt-hash" per line, blank lines and # comments ignored.
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
// and name the offending line numbers (never the lines' content).
func ParseUsers(r io.Reader) (*Users, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxUsersFile+1))
	if err != nil {
		return nil, fmt.Errorf("auth: reading users: %w", err)
	}
	if len(data) > maxUsersFile {
		return nil, fmt.Errorf("auth: %w: larger than %d bytes", ErrUsersFile, maxUsersFile)
	}
	hashes, bad := access.ParseUsersFile(data)
	if err := access.UsersFileError(bad); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	u := &Users{hashes: make(map[string][]byte, len(hashes))}
	for name, hash := range hashes {
		u.hashes[name] = []byte(hash)
	}
	u.dummy = u.pickDummy()
	return u, nil
}

// NewUsers builds Users from username -> bcrypt hash, validating like
// ParseUsers (for configurations that embed users rather than a file).
func NewUsers(hashes map[string]string) (*Users, error) {
	u := &Users{hashes: make(map[string][]byte, len(hashes))}
	for name, hash := range hashes {
		if _, _, problem := access.ParseUserLine(name + ":" + hash); problem != "" {
			return nil, fmt.Errorf("auth: %w: user %q %s", ErrUsersFile, name, problem)
		}
		u.hashes[name] = []byte(hash)
	}
	u.dummy = u.pickDummy()
	return u, nil
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
