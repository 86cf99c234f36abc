package topic

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateName(t *testing.T) {
	tests := map[string]struct {
		name string
		want error
	}{
		"simple":           {"a/b/c", nil},
		"single char":      {"a", nil},
		"slash only":       {"/", nil},
		"empty levels":     {"a//b/", nil},
		"dollar":           {"$SYS/broker/uptime", nil},
		"space":            {"a b/c d", nil},
		"unicode":          {"sensoren/température", nil},
		"max length":       {strings.Repeat("a", MaxLen), nil},
		"empty":            {"", ErrEmpty},
		"too long":         {strings.Repeat("a", MaxLen+1), ErrTooLong},
		"plus":             {"a/+/c", ErrWildcardInName},
		"hash":             {"a/#", ErrWildcardInName},
		"plus inside":      {"a/b+c", ErrWildcardInName},
		"hash inside":      {"a#b", ErrWildcardInName},
		"null":             {"a/\x00/b", ErrNullChar},
		"invalid utf8":     {"a/\xff", ErrInvalidUTF8},
		"surrogate":        {"a/\xed\xa0\x80", ErrInvalidUTF8},
		"truncated rune":   {"caf\xc3", ErrInvalidUTF8},
		"share is a name":  {"$share/g/a", nil},
		"wildcard in $sys": {"$SYS/#", ErrWildcardInName},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := ValidateName(tc.name)
			checkErr(t, err, tc.want)
		})
	}
}

func TestValidateFilter(t *testing.T) {
	tests := map[string]struct {
		filter string
		want   error
	}{
		"literal":             {"a/b/c", nil},
		"hash alone":          {"#", nil},
		"plus alone":          {"+", nil},
		"hash last":           {"sport/tennis/#", nil},
		"plus levels":         {"+/tennis/+", nil},
		"plus and hash":       {"+/+/#", nil},
		"slash hash":          {"/#", nil},
		"plus slash":          {"+/", nil},
		"empty levels":        {"//", nil},
		"dollar":              {"$SYS/#", nil},
		"max length":          {strings.Repeat("a", MaxLen), nil},
		"empty":               {"", ErrEmpty},
		"too long":            {strings.Repeat("+/", MaxLen/2+1) + "#", ErrTooLong},
		"hash not last":       {"sport/#/ranking", ErrMultiLevelWildcard},
		"hash glued":          {"sport/tennis#", ErrMultiLevelWildcard},
		"hash glued before":   {"#sport", ErrMultiLevelWildcard},
		"hash hash":           {"##", ErrMultiLevelWildcard},
		"hash then slash":     {"#/", ErrMultiLevelWildcard},
		"plus glued":          {"sport+", ErrSingleLevelWildcard},
		"plus glued in level": {"a/b+c/d", ErrSingleLevelWildcard},
		"plus plus":           {"++", ErrSingleLevelWildcard},
		"null":                {"a/\x00", ErrNullChar},
		"invalid utf8":        {"\xc3\x28/#", ErrInvalidUTF8},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			checkErr(t, ValidateFilter(tc.filter), tc.want)
		})
	}
}

func TestParseShared(t *testing.T) {
	tests := map[string]struct {
		filter string
		group  string
		inner  string
		shared bool
		want   error
	}{
		"not shared":        {filter: "a/b", inner: "a/b"},
		"share without /":   {filter: "$share", inner: "$share"},
		"shared":            {filter: "$share/g1/a/+", group: "g1", inner: "a/+", shared: true},
		"shared hash":       {filter: "$share/g/#", group: "g", inner: "#", shared: true},
		"shared dollar":     {filter: "$share/g/$SYS/#", group: "g", inner: "$SYS/#", shared: true},
		"shared slash":      {filter: "$share/g//", group: "g", inner: "/", shared: true},
		"case matters":      {filter: "$SHARE/g/a", inner: "$SHARE/g/a"},
		"empty group":       {filter: "$share//a", shared: true, want: ErrShareName},
		"prefix only":       {filter: "$share/", shared: true, want: ErrShareName},
		"plus group":        {filter: "$share/+/a", shared: true, want: ErrShareName},
		"hash group":        {filter: "$share/#", shared: true, want: ErrShareName},
		"group with hash":   {filter: "$share/g#/a", shared: true, want: ErrShareName},
		"no filter":         {filter: "$share/g", shared: true, want: ErrShareNoFilter},
		"empty filter":      {filter: "$share/g/", shared: true, want: ErrShareNoFilter},
		"bad inner":         {filter: "$share/g/a/#/b", shared: true, want: ErrMultiLevelWildcard},
		"bad inner plus":    {filter: "$share/g/a+", shared: true, want: ErrSingleLevelWildcard},
		"null in group":     {filter: "$share/g\x00/a", shared: true, want: ErrNullChar},
		"invalid utf8 tail": {filter: "$share/g/\xff", shared: true, want: ErrInvalidUTF8},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			group, inner, shared, err := ParseShared(tc.filter)
			checkErr(t, err, tc.want)
			if shared != tc.shared {
				t.Errorf("shared = %v, want %v", shared, tc.shared)
			}
			if err == nil && (group != tc.group || inner != tc.inner) {
				t.Errorf("got (%q, %q), want (%q, %q)", group, inner, tc.group, tc.inner)
			}
		})
	}
}

func TestErrorsArePrefixed(t *testing.T) {
	for _, err := range []error{
		ValidateName(""), ValidateName("a/+"), ValidateFilter("a#"),
		ValidateFilter("a+"), ValidateFilter("\x00"), ValidateName("\xff"),
	} {
		if !strings.HasPrefix(err.Error(), "topic: ") {
			t.Errorf("error %q lacks the package prefix", err)
		}
	}
}

func checkErr(t *testing.T, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want != nil && !errors.Is(err, want):
		t.Fatalf("error = %v, want %v", err, want)
	}
}

func TestLimitsCheck(t *testing.T) {
	l := Limits{MaxLen: 20, MaxLevels: 3}
	for s, ok := range map[string]bool{
		"a/b/c":                 true,
		"a/b/c/d":               false,
		"///":                   false,
		"//":                    true,
		"$share/g/a/b/c":        true, // the inner filter has 3 levels
		"$share/g/a/b/c/d":      false,
		"aaaaaaaaaaaaaaaaaaaa":  true,
		"aaaaaaaaaaaaaaaaaaaaa": false,
		"$share/group/a/b/c":    true,
		"$share/group/a/bbb/cc": false, // 21 bytes in all
	} {
		err := l.Check(s)
		if (err == nil) != ok || (err != nil && !errors.Is(err, ErrLimit)) {
			t.Errorf("Check(%q) = %v, want ok=%v", s, err, ok)
		}
	}
	if err := (Limits{}).Check(strings.Repeat("/", MaxLen)); err != nil {
		t.Errorf("zero Limits refused: %v", err)
	}
}
