package pebblestore

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/bollard-io/bollard/broker/store"
)

// Remove deletes a store's files and nothing else beside them, and Exists
// tells a store from a directory without one.
func TestExistsAndRemove(t *testing.T) {
	dir := t.TempDir()
	if has, err := Exists(filepath.Join(dir, "missing")); err != nil || has {
		t.Fatalf("missing directory: %v %v", has, err)
	}
	if has, err := Exists(dir); err != nil || has {
		t.Fatalf("empty directory: %v %v", has, err)
	}
	for _, keep := range []string{"cluster", "lost+found"} {
		if err := os.MkdirAll(filepath.Join(dir, keep), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := &store.Batch{}
	b.PutSession(&store.Session{ClientID: "c", ProtocolVersion: 5, ExpiryInterval: 60})
	if err := st.Commit(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if has, err := Exists(dir); err != nil || !has {
		t.Fatalf("a store: %v %v", has, err)
	}
	if err := Remove(dir); err != nil {
		t.Fatal(err)
	}
	if err := Remove(dir); err != nil {
		t.Fatalf("Remove is not idempotent: %v", err)
	}
	if has, err := Exists(dir); err != nil || has {
		t.Fatalf("after Remove: %v %v", has, err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, e := range ents {
		left = append(left, e.Name())
	}
	if len(left) != 3 || left[0] != "cluster" || left[1] != "lost+found" || left[2] != "notes.txt" {
		t.Fatalf("left after Remove: %q", left)
	}
}
