package access_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/bollard-io/bollard/broker/access"
)

// A cost-4 bcrypt hash (of "pw"), to keep the tests fast.
const testHash = "$2a$04$LxRxN7CFtdNmwjUOAfbIBePGN91lt0LN/iQO3dsCB9U52iHywkKGO"

// TestParseUsersFile is the users file syntax, which the broker (auth)
// and the operator (controllers, checking a users Secret) both use.
func TestParseUsersFile(t *testing.T) {
	cases := map[string]struct {
		file  string
		users int
		want  []string
	}{
		"valid, with comments, blanks and CRLF": {"# users\n\nalice:" + testHash + "\r\n  bob:" + strings.Replace(testHash, "$2a$", "$2y$", 1) + "  \n", 2, nil},
		"empty":                                 {"", 0, nil},
		"no colon":                              {"alice:" + testHash + "\nbob\n", 1, []string{`line 2 is not "username:bcrypt-hash"`}},
		"empty username":                        {":" + testHash, 0, []string{"line 1 has an empty username"}},
		"reserved name":                         {"$anon:" + testHash, 0, []string{"line 1 has a username starting with '$' (reserved)"}},
		"plain password":                        {"alice:secret", 0, []string{"line 1 has a password hash that is not bcrypt"}},
		"other hash":                            {"alice:$apr1$abc$def", 0, []string{"line 1 has a password hash that is not bcrypt"}},
		"truncated":                             {"alice:" + testHash[:30], 0, []string{"line 1 has a malformed bcrypt hash"}},
		"bad cost":                              {"alice:" + strings.Replace(testHash, "$04$", "$99$", 1), 0, []string{"line 1 has a malformed bcrypt hash"}},
		"highest cost":                          {"alice:" + strings.Replace(testHash, "$04$", "$14$", 1), 1, nil},
		"cost too high":                         {"alice:" + strings.Replace(testHash, "$04$", "$15$", 1), 0, []string{"line 1 has a bcrypt cost of 15, above the maximum of 14"}},
		"format's maximum cost":                 {"alice:" + strings.Replace(testHash, "$04$", "$31$", 1), 0, []string{"line 1 has a bcrypt cost of 31"}},
		"tab in username":                       {"al\tice:" + testHash, 0, []string{"line 1 has a control character in the username"}},
		"escape in username":                    {"al\x1bice:" + testHash, 0, []string{"line 1 has a control character in the username"}},
		"DEL in username":                       {"alice\x7f:" + testHash, 0, []string{"line 1 has a control character in the username"}},
		"long line":                             {"alice:" + strings.Repeat("x", access.MaxUsersLine), 0, []string{"line 1 is longer than"}},
		"duplicate": {"alice:" + testHash + "\n#\nalice:" + testHash, 1,
			[]string{"line 3 repeats the username of line 1"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			users, bad := access.ParseUsersFile([]byte(tc.file))
			if len(users) != tc.users || len(bad) != len(tc.want) {
				t.Fatalf("users %d, problems %v; want %d, %q", len(users), bad, tc.users, tc.want)
			}
			for i, e := range bad {
				got := e.Error()
				if !strings.HasPrefix(got, tc.want[i]) || !errors.Is(e, access.ErrUsersFile) {
					t.Errorf("problem %d = %q, want it to start with %q", i, got, tc.want[i])
				}
				if strings.Contains(got, "secret") || strings.Contains(got, "$2a$04$") || strings.Contains(got, "$apr1$") {
					t.Errorf("problem %d = %q quotes the line's content", i, got)
				}
			}
		})
	}
}

func TestUsersFileError(t *testing.T) {
	if access.UsersFileError(nil) != nil {
		t.Error("no problems is an error")
	}
	var many []*access.UsersLineError
	for i := range 7 {
		many = append(many, &access.UsersLineError{Line: i + 1, Msg: "x"})
	}
	err := access.UsersFileError(many)
	if !errors.Is(err, access.ErrUsersFile) || !strings.HasSuffix(err.Error(), "line 5 x; and 2 more") {
		t.Errorf("UsersFileError = %v", err)
	}
}
