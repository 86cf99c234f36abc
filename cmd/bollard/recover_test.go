package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestClusterSubcommandRefusals: the recovery tool refuses bad requests
// before touching anything (the recovery itself: test/cluster and
// broker/cluster).
func TestClusterSubcommandRefusals(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"cluster"}, exitUsage, "usage:"},
		{[]string{"cluster", "explode"}, exitUsage, "unknown command"},
		{[]string{"cluster", "inspect"}, exitUsage, "--data-dir is required"},
		{[]string{"cluster", "inspect", "--data-dir", dir}, exitFailure, "holds no member state"},
		{[]string{"cluster", "recover", "--data-dir", dir, "--member-id", "m0"}, exitUsage, "are required"},
		{[]string{"cluster", "recover", "--data-dir", dir, "--member-id", "m0", "--members", "m0"}, exitUsage, "want id=raftAddress"},
		{[]string{"cluster", "recover", "--data-dir", dir, "--member-id", "m0", "--members", "m1=127.0.0.1:1"}, exitFailure, "does not include this member"},
		{[]string{"cluster", "recover", "--data-dir", dir, "--member-id", "m0", "--members", "m1=127.0.0.1:1", "--dry-run"}, exitUsage, "does not include this member"},
		{[]string{"cluster", "recover", "--data-dir", dir, "--member-id", "m0", "--members", "m0=127.0.0.1:1,m0=127.0.0.1:2", "--at-next-start"}, exitFailure, "listed twice"},
		{[]string{"cluster", "recover", "--data-dir", dir, "--member-id", "m0", "--members", "m0=127.0.0.1:1"}, exitFailure, "holds no member state"},
		{[]string{"cluster", "recover", "--data-dir", dir, "--member-id", "m0", "--members", "m0=127.0.0.1:1", "--at-next-start"}, exitFailure, "holds no member state"},
	} {
		var out, errb bytes.Buffer
		code := run(tc.args, &out, &errb)
		if code != tc.code || !strings.Contains(out.String()+errb.String(), tc.want) {
			t.Errorf("%v: exit %d, want %d with %q:\n%s%s", tc.args, code, tc.code, tc.want, out.String(), errb.String())
		}
	}
}
