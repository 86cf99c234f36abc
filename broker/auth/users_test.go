package auth

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/bollard-io/bollard/broker/access"
)

func hash(t testing.TB, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func TestParseUsers(t *testing.T) {
	alice, bob := hash(t, "alice-pw"), hash(t, "bob-pw")
	// Same hash function, other version prefixes.
	carol := "$2y$" + strings.TrimPrefix(hash(t, "carol-pw"), "$2a$")
	dave := "$2b$" + strings.TrimPrefix(hash(t, "dave-pw"), "$2a$")
	file := "# users\n\nalice:" + alice + "\r\n   # indented comment\n  bob:" + bob +
		"  \ncarol:" + carol + "\ndave:" + dave + "\n"
	u, err := ParseUsers(strings.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	if u.Len() != 4 || !u.Has("alice") || !u.Has("carol") || u.Has("eve") {
		t.Fatalf("users = %v", u.hashes)
	}
	tests := []struct {
		user, password string
		want           bool
	}{
		{"alice", "alice-pw", true},
		{"alice", "bob-pw", false},
		{"alice", "", false},
		{"bob", "bob-pw", true},
		{"carol", "carol-pw", true},
		{"dave", "dave-pw", true},
		{"eve", "alice-pw", false}, // unknown user, even with a valid password
		{"", "", false},
		{"Alice", "alice-pw", false},
	}
	for _, tc := range tests {
		if got := u.Authenticate(tc.user, []byte(tc.password)); got != tc.want {
			t.Errorf("Authenticate(%q, %q) = %v, want %v", tc.user, tc.password, got, tc.want)
		}
	}
}

func TestParseUsersErrors(t *testing.T) {
	h := hash(t, "pw")
	tests := map[string]struct {
		file string
		line string
	}{
		"no colon":       {"# c\nalice\n", "line 2"},
		"empty username": {":" + h, "line 1"},
		"not bcrypt":     {"a:" + h + "\n\nb:$6$salt$sha512crypt\n", "line 3"},
		"plain password": {"a:secret", "line 1"},
		"truncated hash": {"a:" + h[:40], "line 1"},
		"bad cost":       {"a:$2a$99$" + h[7:], "line 1"},
		"duplicate":      {"a:" + h + "\nb:" + h + "\na:" + h, "line 3"},
		"reserved name":  {"$anonymous:" + h, "line 1"},
		"long line":      {"a:" + strings.Repeat("x", access.MaxUsersLine+1), "line 1"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := ParseUsers(strings.NewReader(tc.file))
			if !errors.Is(err, ErrUsersFile) {
				t.Fatalf("error = %v, want ErrUsersFile", err)
			}
			if !strings.Contains(err.Error(), tc.line+" ") || !strings.HasPrefix(err.Error(), "auth: ") {
				t.Errorf("error %q does not name %q", err, tc.line)
			}
		})
	}
}

func TestLoadUsers(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "users")
	if err := os.WriteFile(path, []byte("alice:"+hash(t, "pw")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	u, err := LoadUsers(path)
	if err != nil || !u.Authenticate("alice", []byte("pw")) {
		t.Fatalf("LoadUsers: %v", err)
	}
	if _, err := LoadUsers(filepath.Join(dir, "missing")); err == nil ||
		!strings.HasPrefix(err.Error(), "auth: ") || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file error = %v", err)
	}
	if err := os.WriteFile(path, []byte("bad line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadUsers(path); !errors.Is(err, ErrUsersFile) || !strings.Contains(err.Error(), path) {
		t.Errorf("bad file error = %v", err)
	}
}

func TestNewUsers(t *testing.T) {
	u, err := NewUsers(map[string]string{"alice": hash(t, "pw")})
	if err != nil || !u.Authenticate("alice", []byte("pw")) {
		t.Fatalf("NewUsers: %v", err)
	}
	if _, err := NewUsers(map[string]string{"bob": "plain"}); !errors.Is(err, ErrUsersFile) {
		t.Errorf("error = %v, want ErrUsersFile", err)
	}
}

func TestNilAndEmptyUsers(t *testing.T) {
	var u *Users
	if u.Authenticate("a", nil) || u.Has("a") || u.Len() != 0 {
		t.Error("nil Users knows somebody")
	}
	empty, err := ParseUsers(strings.NewReader("# nobody\n"))
	if err != nil {
		t.Fatal(err)
	}
	// Unknown users are compared against the built-in dummy hash, which must
	// be a well-formed bcrypt hash for the comparison to cost time.
	if _, err := bcrypt.Cost(empty.dummy); err != nil {
		t.Fatalf("dummy hash: %v", err)
	}
	if empty.Authenticate("a", []byte("x")) {
		t.Error("empty Users authenticated")
	}
}

func TestDummyHashMatchesCommonCost(t *testing.T) {
	h5, _ := bcrypt.GenerateFromPassword([]byte("x"), 5)
	u, err := NewUsers(map[string]string{"a": hash(t, "x"), "b": hash(t, "y"), "c": string(h5)})
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := bcrypt.Cost(u.dummy); c != bcrypt.MinCost {
		t.Errorf("dummy cost = %d, want the most common cost %d", c, bcrypt.MinCost)
	}
}

// TestUsersErrorsHideSecrets: a bad line is named by its number; neither
// its username nor its hash reaches the message (it may end in a log).
func TestUsersErrorsHideSecrets(t *testing.T) {
	_, err := ParseUsers(strings.NewReader("secretname:$2a$10$notahashatallnotahashatall\n"))
	if err == nil || strings.Contains(err.Error(), "secretname") || strings.Contains(err.Error(), "notahash") {
		t.Errorf("error = %v", err)
	}
}
