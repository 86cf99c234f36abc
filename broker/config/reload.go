package config

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// Reload classes, as written in the `reload` struct tag.
const (
	// Hot fields are applied by a running broker when its file changes.
	Hot = "hot"
	// Restart fields take effect on the next start.
	Restart = "restart"
)

// Change is one changed leaf field between two configurations.
type Change struct {
	// Field is the path in the file, e.g. "queues.maxQueuedMessages".
	Field string
	// Class is Hot or Restart.
	Class string
}

// Diff lists the leaf fields that differ between old and new, in file
// order, each with its reload class.
func Diff(old, new *Config) []Change {
	var out []Change
	walk(reflect.ValueOf(*old), reflect.ValueOf(*new), "", func(l Leaf, b reflect.Value) {
		if !equal(l.Value, b) {
			out = append(out, Change{Field: l.Path, Class: l.Class})
		}
	})
	return out
}

// NeedsRestart reports whether any change in changes is a restart field.
func NeedsRestart(changes []Change) bool {
	for _, c := range changes {
		if c.Class == Restart {
			return true
		}
	}
	return false
}

// Fields lists every leaf field of the schema with its reload class.
func Fields() []Change {
	var out []Change
	for _, l := range Leaves(Default()) {
		out = append(out, Change{Field: l.Path, Class: l.Class})
	}
	return out
}

// Leaf is one leaf field of the schema (a field with a reload tag), for
// tools that document or inspect the configuration.
type Leaf struct {
	// Path is the field's path in the file, e.g. "queues.maxQueuedMessages".
	Path string
	// Class is Hot or Restart.
	Class string
	// Owner is the struct type that declares the field.
	Owner reflect.Type
	// Field is the field itself (its Go name, type and tags).
	Field reflect.StructField
	// Value is the field's value in the configuration walked.
	Value reflect.Value
}

// Leaves lists the leaf fields of c in file order.
func Leaves(c *Config) []Leaf {
	var out []Leaf
	v := reflect.ValueOf(*c)
	walk(v, v, "", func(l Leaf, _ reflect.Value) { out = append(out, l) })
	return out
}

// RestartHash is a digest of the restart fields of c only. Two configs with
// the same hash can be swapped by a running broker without a restart; the
// operator puts it on the pod template so that only restart changes roll
// the pod. Fields at their zero value (empty, unset) are left out, so a
// field added to a later version does not change the hash of a config
// that does not use it (an operator upgrade rolls no broker for it).
func RestartHash(c *Config) string {
	h := sha256.New()
	for _, l := range Leaves(c) {
		if l.Class != Restart || l.Value.IsZero() || (l.Value.Kind() == reflect.Slice && l.Value.Len() == 0) {
			continue
		}
		b, err := json.Marshal(l.Value.Interface())
		if err != nil { // only plain values reach here; cannot happen
			panic(fmt.Sprintf("config: hashing %s: %v", l.Path, err))
		}
		fmt.Fprintf(h, "%s=%s\n", l.Path, b)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// walk visits the leaf fields of two values of the same struct type, with
// the leaf of a and the matching value of b. A field is a leaf when it has
// a reload tag; structs without one are descended into.
func walk(a, b reflect.Value, prefix string, fn func(l Leaf, b reflect.Value)) {
	t := a.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		path := name
		if prefix != "" {
			path = prefix + "." + name
		}
		if class := f.Tag.Get("reload"); class != "" {
			fn(Leaf{Path: path, Class: class, Owner: t, Field: f, Value: a.Field(i)}, b.Field(i))
			continue
		}
		if f.Type.Kind() != reflect.Struct {
			panic("config: field " + path + " has no reload tag")
		}
		walk(a.Field(i), b.Field(i), path, fn)
	}
}

// equal compares two leaf values; nil and empty slices are equal, since
// both mean "none" in the file.
func equal(a, b reflect.Value) bool {
	if a.Kind() == reflect.Slice && a.Len() == 0 && b.Len() == 0 {
		return true
	}
	return reflect.DeepEqual(a.Interface(), b.Interface())
}
