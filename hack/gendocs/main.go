// Command gendocs generates the reference pages under docs/reference from
// their sources, so they cannot drift from the code:
//
//	docs/reference/mqttbroker.md     from config/crd/bases (types, defaults,
//	                                 validation, descriptions), structured
//	                                 by the Go types in api/v1alpha1
//	docs/reference/broker-config.md  from broker/config (paths, types,
//	                                 config.Default(), config.Fields(), and
//	                                 the doc comments of the schema)
//
// Run it from the repository root (`make docs`). With -check it writes
// nothing and exits 1 when a page is stale; a test in this package does the
// same check under `go test ./...`.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

// page is one generated file.
type page struct {
	path string
	gen  func(root string) ([]byte, error)
}

var pages = []page{
	{filepath.Join("docs", "reference", "mqttbroker.md"), crdReference},
	{filepath.Join("docs", "reference", "broker-config.md"), configReference},
}

func main() {
	check := flag.Bool("check", false, "write nothing; exit 1 if a generated page is stale")
	root := flag.String("root", ".", "repository root")
	flag.Parse()
	stale, err := generate(*root, *check)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gendocs:", err)
		os.Exit(1)
	}
	for _, p := range stale {
		if *check {
			fmt.Fprintf(os.Stderr, "gendocs: %s is out of date: run `make docs`\n", p)
		} else {
			fmt.Fprintf(os.Stderr, "gendocs: wrote %s\n", p)
		}
	}
	if *check && len(stale) > 0 {
		os.Exit(1)
	}
}

// generate renders every page and returns the paths whose content
// changed; unless check is set it writes them.
func generate(root string, check bool) ([]string, error) {
	var stale []string
	for _, p := range pages {
		want, err := p.gen(root)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.path, err)
		}
		path := filepath.Join(root, p.path)
		have, err := os.ReadFile(path)
		if err != nil && !os.IsNotExist(err) {
			return nil, err
		}
		if bytes.Equal(have, want) {
			continue
		}
		stale = append(stale, p.path)
		if check {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, want, 0o644); err != nil {
			return nil, err
		}
	}
	return stale, nil
}
