package controllers

import (
	"slices"
	"strings"
	"testing"
)

// A cost-4 bcrypt hash (of "pw"), to keep the tests fast.
const testHash = "$2a$04$LxRxN7CFtdNmwjUOAfbIBePGN91lt0LN/iQO3dsCB9U52iHywkKGO"

func TestUsersFileProblems(t *testing.T) {
	cases := map[string]struct {
		file string
		want []string
	}{
		"valid, with comments, blanks and CRLF": {"# users\n\nalice:" + testHash + "\r\n  bob:" + strings.Replace(testHash, "$2a$", "$2y$", 1) + "  \n", nil},
		"empty":                                 {"", nil},
		"no colon":                              {"alice:" + testHash + "\nbob\n", []string{`line 2 is not "username:bcrypt-hash"`}},
		"empty username":                        {":" + testHash, []string{"line 1 has an empty username"}},
		"reserved name":                         {"$anon:" + testHash, []string{"line 1 has a username starting with '$' (reserved)"}},
		"plain password":                        {"alice:secret", []string{"line 1 has a password hash that is not bcrypt"}},
		"other hash":                            {"alice:$apr1$abc$def", []string{"line 1 has a password hash that is not bcrypt"}},
		"truncated":                             {"alice:" + testHash[:30], []string{"line 1 has a malformed bcrypt hash"}},
		"bad cost":                              {"alice:" + strings.Replace(testHash, "$04$", "$99$", 1), []string{"line 1 has a malformed bcrypt hash"}},
		"duplicate": {"alice:" + testHash + "\n#\nalice:" + testHash,
			[]string{"line 3 repeats the username of line 1"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := usersFileProblems([]byte(tc.file))
			if len(got) != len(tc.want) {
				t.Fatalf("usersFileProblems = %q, want %q", got, tc.want)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tc.want[i]) {
					t.Errorf("problem %d = %q, want it to start with %q", i, got[i], tc.want[i])
				}
				if strings.Contains(got[i], "secret") || strings.Contains(got[i], "$2a$04$") || strings.Contains(got[i], "$apr1$") {
					t.Errorf("problem %d = %q quotes the line's content", i, got[i])
				}
			}
		})
	}
}

func TestSummarizeUsersProblems(t *testing.T) {
	var many []string
	for range 7 {
		many = append(many, "x")
	}
	if got := summarizeUsersProblems(many); got != "x; x; x; x; x; and 2 more" {
		t.Errorf("summarizeUsersProblems = %q", got)
	}
	if got := summarizeUsersProblems(slices.Clone(many[:2])); got != "x; x" {
		t.Errorf("summarizeUsersProblems = %q", got)
	}
}
