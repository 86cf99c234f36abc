package packet

import (
	"reflect"
	"testing"
)

// TestEmptyCoversEveryField sets each field of Properties in turn and
// checks that empty sees it and that the property is encoded: a field
// added to the struct but not to empty would otherwise be dropped
// silently from every packet.
func TestEmptyCoversEveryField(t *testing.T) {
	var zero Properties
	if !zero.empty() || zero.size() != 0 {
		t.Fatal("zero Properties not empty")
	}
	typ := reflect.TypeOf(zero)
	for i := range typ.NumField() {
		var p Properties
		f := reflect.ValueOf(&p).Elem().Field(i)
		switch f.Kind() {
		case reflect.Pointer:
			f.Set(reflect.New(f.Type().Elem()))
		case reflect.Slice:
			f.Set(reflect.MakeSlice(f.Type(), 1, 1))
		default:
			t.Fatalf("field %s: unexpected kind %s", typ.Field(i).Name, f.Kind())
		}
		if p.empty() {
			t.Errorf("field %s set, but empty() is true", typ.Field(i).Name)
		}
		if p.size() == 0 {
			t.Errorf("field %s set, but size() is 0", typ.Field(i).Name)
		}
	}
}
