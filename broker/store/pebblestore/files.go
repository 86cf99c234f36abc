package pebblestore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Exists reports whether dir holds a store (a Pebble database), without
// opening it. A missing directory holds none.
func Exists(dir string) (bool, error) {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	d, err := pebble.Peek(dir, vfs.Default)
	if err != nil {
		return false, fmt.Errorf("pebblestore: look for a store in %s: %w", dir, err)
	}
	return d.Exists, nil
}

// storeFile matches the names of the files Pebble keeps in a store's
// directory: tables, blobs, write-ahead logs, manifests, options, the
// lock, format and manifest markers, and temporary files.
var storeFile = regexp.MustCompile(`^([0-9]+\.(sst|log|blob)|MANIFEST-[0-9]+|OPTIONS-[0-9]+|CURRENT|LOCK|marker\..+|temporary\.[0-9]+\.dbtmp|CURRENT\.[0-9]+\.dbtmp)$`)

// Remove deletes a closed store's files from dir and leaves every other
// entry (a subdirectory such as a cluster member's state, lost+found)
// alone. It is idempotent: a crash half way is finished by calling it
// again. The format and manifest markers go first, so a half-removed store
// is never mistaken for an intact one.
func Remove(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("pebblestore: remove the store in %s: %w", dir, err)
	}
	var rest []string
	for _, e := range ents {
		if !e.Type().IsRegular() || !storeFile.MatchString(e.Name()) {
			continue
		}
		if len(e.Name()) > 7 && e.Name()[:7] == "marker." {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("pebblestore: remove the store in %s: %w", dir, err)
			}
			continue
		}
		rest = append(rest, e.Name())
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	for _, name := range rest {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("pebblestore: remove the store in %s: %w", dir, err)
		}
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("pebblestore: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("pebblestore: sync %s: %w", dir, err)
	}
	return nil
}
