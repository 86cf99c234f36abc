#!/usr/bin/env bash
# verify.sh fails when generated files are stale or Go code is not gofmt'ed.
# It regenerates into the tree and compares content hashes, so it works in a
# dirty working tree too (it never looks at git status).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

generated() {
	local d dirs=()
	for d in api config/crd/bases config/rbac charts/bollard-operator/crds charts/bollard-operator/templates/crds; do
		[[ -d $d ]] && dirs+=("$d")
	done
	find "${dirs[@]}" -type f \( -name 'zz_generated*.go' -o -name '*.yaml' \) | sort | xargs -r sha256sum
}

before="$(generated)"
make -s generate manifests
if [[ -x hack/sync-chart-crds.sh ]]; then hack/sync-chart-crds.sh; fi
after="$(generated)"
if [[ "$before" != "$after" ]]; then
	echo "verify: generated files were out of date and have been regenerated:" >&2
	diff <(echo "$before") <(echo "$after") >&2 || true
	echo "verify: review and commit them ('make generate manifests')." >&2
	exit 1
fi

unformatted="$(gofmt -s -l $(git ls-files --cached --others --exclude-standard '*.go'))"
if [[ -n "$unformatted" ]]; then
	echo "verify: these files need gofmt -s (run 'make fmt'):" >&2
	echo "$unformatted" >&2
	exit 1
fi
echo "verify: generated files and formatting are up to date"
