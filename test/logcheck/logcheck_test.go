package logcheck

import "testing"

func TestRepeatedKey(t *testing.T) {
	for _, c := range []struct{ log, key string }{
		{`{"time":"t","msg":"a","member":"m0","member":"m1"}`, "member"},
		{"not json\n{\"a\":1,\"b\":{\"a\":2,\"a\":3},\"c\":[1,2]}\n{\"x\":1,\"time\":\"t\",\"time\":\"1s\"}", "time"},
		{`{"a":1,"b":{"a":2},"c":"a"}`, ""},
		{`{"a":1,"a"`, "a"},
		{"", ""},
	} {
		if _, key := RepeatedKey(c.log); key != c.key {
			t.Errorf("RepeatedKey(%q) = %q, want %q", c.log, key, c.key)
		}
	}
}
