package controllers

import (
	"fmt"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// maxUsersLine bounds a line of a users file, as the broker does.
const maxUsersLine = 64 << 10

// maxUsersProblems bounds how many bad lines a message lists.
const maxUsersProblems = 5

// usersFileProblems checks a users file the way the broker's parser does
// (broker/auth, which the operator may not import): every line that is not
// blank or a # comment is "username:bcrypt-hash", the username non-empty,
// not starting with '$' and not repeated, the hash a bcrypt hash ($2a$, $2b$
// or $2y$, with a valid cost). It returns one message per bad line, naming
// the line number and what is wrong but never the line's content: the hash
// must not reach an Event or the status.
func usersFileProblems(data []byte) []string {
	var out []string
	seen := map[string]int{}
	for i, raw := range strings.Split(string(data), "\n") {
		n := i + 1
		if len(raw) > maxUsersLine {
			out = append(out, fmt.Sprintf("line %d is longer than %d bytes", n, maxUsersLine))
			continue
		}
		text := strings.TrimSpace(raw)
		if text == "" || text[0] == '#' {
			continue
		}
		name, problem := checkUserLine(text)
		if problem == "" {
			if first, dup := seen[name]; dup {
				problem = fmt.Sprintf("repeats the username of line %d", first)
			} else {
				seen[name] = n
			}
		}
		if problem != "" {
			out = append(out, fmt.Sprintf("line %d %s", n, problem))
		}
	}
	return out
}

// checkUserLine returns the username of a "username:hash" line, or a
// description of what is wrong with it.
func checkUserLine(text string) (name, problem string) {
	name, hash, ok := strings.Cut(text, ":")
	switch {
	case !ok:
		return "", `is not "username:bcrypt-hash"`
	case name == "":
		return "", "has an empty username"
	case strings.HasPrefix(name, "$"):
		return "", "has a username starting with '$' (reserved)"
	case strings.ContainsAny(name, "\x00\r"):
		return "", "has a control character in the username"
	case !strings.HasPrefix(hash, "$2a$") && !strings.HasPrefix(hash, "$2b$") && !strings.HasPrefix(hash, "$2y$"):
		return "", "has a password hash that is not bcrypt ($2a$, $2b$ or $2y$; htpasswd -nbB makes one)"
	}
	if _, err := bcrypt.Cost([]byte(hash)); err != nil {
		return "", "has a malformed bcrypt hash"
	}
	return name, ""
}

// summarizeUsersProblems joins the first few problems for a message.
func summarizeUsersProblems(problems []string) string {
	if len(problems) <= maxUsersProblems {
		return strings.Join(problems, "; ")
	}
	return fmt.Sprintf("%s; and %d more", strings.Join(problems[:maxUsersProblems], "; "), len(problems)-maxUsersProblems)
}
