package monitoring_test

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"
)

// metricNames returns the metric names a PromQL expression selects. It is
// a lexer, not a parser: it skips string literals, label matchers ({...}),
// ranges and offsets ([...]), the label lists of by/without/on/ignoring/
// group_left/group_right, numbers, functions (a name followed by "("), and
// the language's keywords; every other identifier is a metric name.
// Grafana's $variables count as identifiers to skip. A keyword or function
// it does not know fails the check that uses it (it is then taken for a
// metric the broker does not export), never passes it.
func metricNames(expr string) ([]string, error) {
	var names []string
	r := []rune(expr)
	for i := 0; i < len(r); {
		c := r[i]
		switch {
		case unicode.IsSpace(c):
			i++
		case c == '"' || c == '\'' || c == '`':
			j, err := skipString(r, i)
			if err != nil {
				return nil, fmt.Errorf("%q: %w", expr, err)
			}
			i = j
		case c == '{' || c == '[':
			j, err := skipGroup(r, i)
			if err != nil {
				return nil, fmt.Errorf("%q: %w", expr, err)
			}
			i = j
		case c == '$':
			i = skipIdent(r, i+1)
		case unicode.IsDigit(c) || (c == '.' && i+1 < len(r) && unicode.IsDigit(r[i+1])):
			for i < len(r) && (unicode.IsDigit(r[i]) || strings.ContainsRune(".eE+-xXabcdefABCDEF_smhdwy", r[i])) {
				i++
			}
		case isIdentStart(c):
			j := skipIdent(r, i)
			word := string(r[i:j])
			k := j
			for k < len(r) && unicode.IsSpace(r[k]) {
				k++
			}
			switch {
			case grouping[word]:
				if k < len(r) && r[k] == '(' {
					end, err := skipGroup(r, k)
					if err != nil {
						return nil, fmt.Errorf("%q: %w", expr, err)
					}
					k = end
				}
				i = k
				continue
			case keywords[word]:
			case functions[word] && (hasWordAt(r, k, "by") || hasWordAt(r, k, "without")):
				// an aggregation with its grouping first: sum by (x) (...)
			case k < len(r) && r[k] == '(':
				if !functions[word] {
					return nil, fmt.Errorf("%q: unknown function %s", expr, word)
				}
			default:
				names = append(names, word)
			}
			i = j
		default:
			i++ // operators, parentheses, commas
		}
	}
	return names, nil
}

// hasWordAt reports whether the identifier at r[i:] is word.
func hasWordAt(r []rune, i int, word string) bool {
	return i < len(r) && isIdentStart(r[i]) && string(r[i:skipIdent(r, i)]) == word
}

func isIdentStart(c rune) bool { return c == '_' || c == ':' || unicode.IsLetter(c) }

func skipIdent(r []rune, i int) int {
	for i < len(r) && (r[i] == '_' || r[i] == ':' || unicode.IsLetter(r[i]) || unicode.IsDigit(r[i])) {
		i++
	}
	return i
}

func skipString(r []rune, i int) (int, error) {
	q := r[i]
	for j := i + 1; j < len(r); j++ {
		switch {
		case r[j] == '\\' && q != '`':
			j++
		case r[j] == q:
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("unterminated string at %d", i)
}

// skipGroup skips a bracketed group ({...}, [...] or (...)) with the
// strings in it.
func skipGroup(r []rune, i int) (int, error) {
	closing := map[rune]rune{'{': '}', '[': ']', '(': ')'}[r[i]]
	for j := i + 1; j < len(r); j++ {
		switch r[j] {
		case '"', '\'', '`':
			end, err := skipString(r, j)
			if err != nil {
				return 0, err
			}
			j = end - 1
		case closing:
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("unclosed %c at %d", r[i], i)
}

// templateQueryNames returns the metric names of a Grafana variable query,
// label_values(<selector>, <label>).
func templateQueryNames(q string) ([]string, error) {
	m := labelValues.FindStringSubmatch(strings.TrimSpace(q))
	if m == nil {
		return nil, fmt.Errorf("%q: not label_values(selector, label)", q)
	}
	return metricNames(m[1])
}

var labelValues = regexp.MustCompile(`^label_values\((.+),\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)$`)

// grouping keywords take a label list.
var grouping = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}

var keywords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "atan2": true,
	"inf": true, "nan": true, "Inf": true, "NaN": true}

// functions are PromQL's aggregations and functions that the dashboard,
// the rules and Grafana's label_values use.
var functions = map[string]bool{}

func init() {
	for _, f := range strings.Fields(`sum min max avg count stddev stdvar topk bottomk quantile count_values group
		rate irate increase delta idelta deriv predict_linear resets changes
		abs ceil floor round clamp clamp_min clamp_max exp ln log2 log10 sqrt sgn
		histogram_quantile histogram_count histogram_sum histogram_fraction
		absent absent_over_time present_over_time last_over_time max_over_time min_over_time avg_over_time
		sum_over_time count_over_time quantile_over_time stddev_over_time
		label_replace label_join vector scalar time timestamp sort sort_desc
		`) {
		functions[f] = true
	}
}
