#!/usr/bin/env bash
# earlier-bin.sh builds bollard as it was at an earlier commit and prints the
# binary's path, for the tests that upgrade from or roll back to an earlier
# build (test/cluster: TestRollingUpgradeFromEarlierBuild,
# TestRollbackToEarlierBuildStops, which read it from BOLLARD_EARLIER_BIN).
#
# The commit is 98bfcbe by default: the last build before log entry format 2
# and before the Raft log moved from Pebble (raft/log) to raft-wal
# (raft/wal), so the tests cross both changes. It must be in this clone's
# history; in a shallow clone (or outside git) this prints nothing and exits
# 0, and those tests skip.
#
# The binary is cached in bin/ by commit; a build goes to a temporary name
# first, so an interrupted one leaves nothing behind.
#
# Environment:
#   BOLLARD_EARLIER_COMMIT  the commit to build (default 98bfcbe)
set -euo pipefail

commit="${BOLLARD_EARLIER_COMMIT:-98bfcbe}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

full="$(git rev-parse --verify --quiet "${commit}^{commit}" 2>/dev/null || true)"
if [[ -z "$full" ]]; then
	echo "earlier-bin: commit $commit is not in this clone; tests of an earlier build will skip" >&2
	exit 0
fi
out="$root/bin/bollard-${full:0:12}"
if [[ -x "$out" ]]; then
	echo "$out"
	exit 0
fi
src="$(mktemp -d)"
trap 'rm -rf "$src"' EXIT
git archive "$full" | tar -x -C "$src"
mkdir -p "$root/bin"
(cd "$src" && CGO_ENABLED=0 go build -trimpath -o "$out.tmp" ./cmd/bollard) >&2
mv "$out.tmp" "$out"
echo "$out"
