package testenv

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// maxTailedLogs bounds the logs PrintLogTails prints (in the walk's
// lexical order).
const maxTailedLogs = 40

// PrintLogTails writes the last n lines of every *.log file under dir (in
// the e2e tier: the control plane's components, the operator, every pod's
// container) to w, each under a header naming it: a failed run on a
// machine that is gone afterwards (CI) still shows what the operator and
// the brokers said.
func PrintLogTails(w io.Writer, dir string, n int) {
	printed := 0
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".log") {
			return nil
		}
		if printed++; printed > maxTailedLogs {
			return filepath.SkipAll
		}
		rel, _ := filepath.Rel(dir, path)
		lines, err := tail(path, n)
		if err != nil {
			fmt.Fprintf(w, "---- %s: %v\n", rel, err)
			return nil
		}
		fmt.Fprintf(w, "---- last %d lines of %s\n", len(lines), rel)
		for _, l := range lines {
			fmt.Fprintln(w, l)
		}
		return nil
	})
}

// tail returns the last n lines of the file at path, each cut at 2,000
// bytes.
func tail(path string, n int) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ring := make([]string, 0, n)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		l := sc.Text()
		if len(l) > 2000 {
			l = l[:2000] + "..."
		}
		if len(ring) == n {
			copy(ring, ring[1:])
			ring = ring[:n-1]
		}
		ring = append(ring, l)
	}
	return ring, sc.Err()
}
