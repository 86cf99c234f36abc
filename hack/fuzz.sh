#!/usr/bin/env bash
# Runs every fuzz target of the module for a set time each, one at a time
# (a fuzzer uses every core; two at once would halve each one's time).
# Usage: hack/fuzz.sh [FUZZTIME]   (default 20s; any `go test -fuzztime` value;
# below a few seconds a target may fail with "context deadline exceeded"
# before it has even run its seed corpus)
#
# Targets are found by `func Fuzz...` in *_test.go files, so a new target
# needs no change here. Seeds live in <package>/testdata/fuzz/<Target>/ and
# every `go test` runs them; a crasher the fuzzer finds is written there
# too, and is kept (committed) as a regression seed once fixed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

fuzztime="${1:-20s}"
go="${GO:-go}"
failed=()
while IFS=: read -r file target; do
	pkg="./$(dirname "$file")"
	echo "== $pkg $target ($fuzztime)"
	if ! "$go" test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg"; then
		failed+=("$pkg $target")
	fi
done < <(git grep -l 'func Fuzz[A-Za-z0-9_]*(' -- '*_test.go' |
	while read -r f; do
		sed -n "s|^func \(Fuzz[A-Za-z0-9_]*\)(.*|$f:\1|p" "$f"
	done)

if ((${#failed[@]})); then
	printf 'fuzz: FAIL %s\n' "${failed[@]}" >&2
	exit 1
fi
echo "fuzz: every target ran $fuzztime without a failure"
