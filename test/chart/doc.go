// Package chart tests the install artefacts: the Helm chart
// (charts/bollard-operator: lint, golden `helm template` output, schema,
// CRDs in sync with config/crd/bases), the kustomize install
// (config/default, checked equivalent to the chart), and the Dockerfile
// (it copies exactly what `make build` produces).
//
// The tests run bin/helm and bin/kustomize, which `make test` installs, so
// they build only with the external tag (TestHelmInstallInE2ECluster also
// needs e2e); they fail, not skip, when those are missing.
// `go test -tags external ./test/chart -update` rewrites the golden files.
package chart
