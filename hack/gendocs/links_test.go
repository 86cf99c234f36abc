package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var (
	mdLink  = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	heading = regexp.MustCompile(`(?m)^#{1,6} (.+)$`)
)

// slug is GitHub's anchor for a heading: lower case, punctuation dropped,
// spaces as hyphens.
func slug(h string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(h)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
		}
	}
	return b.String()
}

func anchors(t *testing.T, path string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, m := range heading.FindAllStringSubmatch(string(b), -1) {
		out[slug(strings.ReplaceAll(m[1], "`", ""))] = true
	}
	return out
}

// TestDocsLinks checks that every relative link in the user docs and the
// chart's README names a file that exists and, for a Markdown file, a
// heading that exists.
func TestDocsLinks(t *testing.T) {
	root := repoRoot(t)
	pages, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	refs, _ := filepath.Glob(filepath.Join(root, "docs", "reference", "*.md"))
	pages = append(append(pages, refs...), filepath.Join(root, "charts", "bollard-operator", "README.md"), filepath.Join(root, "README.md"))
	for _, page := range pages {
		b, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, page)
		for _, m := range mdLink.FindAllStringSubmatch(string(b), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, anchor, _ := strings.Cut(target, "#")
			path := page
			if file != "" {
				path = filepath.Join(filepath.Dir(page), file)
			}
			if _, err := os.Stat(path); err != nil {
				t.Errorf("%s: link %q: %v", rel, target, err)
				continue
			}
			if anchor != "" && strings.HasSuffix(path, ".md") && !anchors(t, path)[anchor] {
				t.Errorf("%s: link %q: no heading with anchor #%s", rel, target, anchor)
			}
		}
	}
}

// repoPath is a path into the repository as the docs write them: a
// top-level directory of the module, then path parts.
var repoPath = regexp.MustCompile(`(?:^|[\s(\x60'"])((?:\.\./)?(?:api|broker|charts|cmd|config|controllers|docs|hack|test)/[A-Za-z0-9_./-]*[A-Za-z0-9_/])`)

// notPaths are strings of the docs that look like repository paths but
// are not meant as files of it.
var notPaths = map[string]string{
	"broker/config/zz_violation.go": "the file a lint example imagines adding",
	"broker/engine/zz_violation.go": "the file a lint example imagines adding",
	"broker/host/zz_violation.go":   "the file a lint example imagines adding",
	"broker/server":                 "the package design.md names, which architecture.md says became broker/engine and broker/host",
	"test/nosubscribe":              "an MQTT topic in an ACL example",
}

// TestDocsNameExistingPaths: every repository path the README and the docs
// name (in text or code, globs aside) exists, so the docs never send a
// reader to a file that was moved or removed.
func TestDocsNameExistingPaths(t *testing.T) {
	root := repoRoot(t)
	pages, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	pages = append(pages, filepath.Join(root, "README.md"), filepath.Join(root, "charts", "bollard-operator", "README.md"))
	checked := 0
	for _, page := range pages {
		b, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, page)
		for _, m := range repoPath.FindAllStringSubmatchIndex(string(b), -1) {
			p := string(b[m[2]:m[3]])
			next := ""
			if m[3] < len(b) {
				next = string(b[m[3]])
			}
			if next == "*" || next == "{" || next == "<" || notPaths[p] != "" {
				continue // a glob, a brace list or a placeholder
			}
			checked++
			target := filepath.Join(root, strings.TrimPrefix(p, "../"))
			if strings.HasPrefix(p, "../") {
				target = filepath.Join(filepath.Dir(page), p)
			}
			if _, err := os.Stat(target); err != nil {
				t.Errorf("%s names %s, which does not exist", rel, p)
			}
		}
	}
	if checked < 20 {
		t.Fatalf("checked only %d paths: the pattern no longer finds them", checked)
	}
}
