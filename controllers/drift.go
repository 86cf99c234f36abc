package controllers

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// driftOptions tune driftPaths.
type driftOptions struct {
	// openMaps are the paths of maps where others may add keys: only the
	// keys want holds are compared (for example pod template annotations,
	// where `kubectl rollout restart` adds one).
	openMaps map[string]bool
	// allMapsOpen opens every map: for objects whose schema others default
	// (an unstructured custom resource).
	allMapsOpen bool
}

// driftPaths lists the fields (as JSON paths under root) where have departs
// from want, reading want as the operator's intent on the fields it owns:
//
//   - a field want leaves unset (zero value: empty string, 0, false, nil
//     pointer, empty slice or map, zero struct) is the apiserver's to
//     default or another controller's to fill, so it never counts: this is
//     what keeps apiserver defaulting (probe periods, DNS policy, pull
//     policy...) from causing an update on every reconcile;
//   - a field want sets must match: through a pointer even when the value
//     is zero (automountServiceAccountToken: false), slices with the same
//     length element by element (an added container or volume is drift),
//     maps with the same keys unless the path is open, quantities and times
//     by value.
//
// It is pure and compares only; the caller decides what to rewrite.
func driftPaths(root string, want, have any, o driftOptions) []string {
	var out []string
	drift(root, reflect.ValueOf(want), reflect.ValueOf(have), o, &out)
	return out
}

var (
	quantityType = reflect.TypeFor[resource.Quantity]()
	timeType     = reflect.TypeFor[metav1.Time]()
)

func drift(path string, w, h reflect.Value, o driftOptions, out *[]string) {
	if w.IsZero() || ((w.Kind() == reflect.Slice || w.Kind() == reflect.Map) && w.Len() == 0) {
		return
	}
	add := func() { *out = append(*out, path) }
	if !h.IsValid() || h.Type() != w.Type() {
		add() // unstructured content of another shape
		return
	}
	if w.Type() == quantityType || w.Type() == timeType {
		if !equality.Semantic.DeepEqual(w.Interface(), h.Interface()) {
			add()
		}
		return
	}
	switch w.Kind() {
	case reflect.Pointer, reflect.Interface:
		driftPointer(path, w, h, o, out)
	case reflect.Struct:
		driftStruct(path, w, h, o, out)
	case reflect.Slice:
		if w.Len() != h.Len() {
			add()
			return
		}
		for i := range w.Len() {
			drift(fmt.Sprintf("%s[%d]", path, i), w.Index(i), h.Index(i), o, out)
		}
	case reflect.Map:
		driftMap(path, w, h, o, out)
	default:
		if w.Interface() != h.Interface() {
			add()
		}
	}
}

func driftPointer(path string, w, h reflect.Value, o driftOptions, out *[]string) {
	switch e := w.Elem(); {
	case h.IsNil():
		*out = append(*out, path)
	case e.Kind() != reflect.Struct && e.IsZero():
		// Pointing at a zero value is an explicit choice.
		if !h.Elem().IsZero() {
			*out = append(*out, path)
		}
	default:
		drift(path, e, h.Elem(), o, out)
	}
}

func driftStruct(path string, w, h reflect.Value, o driftOptions, out *[]string) {
	t := w.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		p := path
		switch {
		case name == "-":
			continue
		case name != "":
			p = path + "." + name
		case !f.Anonymous:
			p = path + "." + f.Name
		}
		drift(p, w.Field(i), h.Field(i), o, out)
	}
}

func driftMap(path string, w, h reflect.Value, o driftOptions, out *[]string) {
	if !o.allMapsOpen && !o.openMaps[path] && w.Len() != h.Len() {
		*out = append(*out, path)
		return
	}
	keys := w.MapKeys()
	sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j]) })
	for _, k := range keys {
		p := fmt.Sprintf("%s[%v]", path, k)
		hv := h.MapIndex(k)
		if !hv.IsValid() {
			*out = append(*out, p)
			continue
		}
		wv := w.MapIndex(k)
		if wv.IsZero() {
			// A key set to an empty value is still a key the operator set.
			if !hv.IsZero() {
				*out = append(*out, p)
			}
			continue
		}
		drift(p, wv, hv, o, out)
	}
}
