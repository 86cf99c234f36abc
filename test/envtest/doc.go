// Package envtest is the smoke test of the control-plane test tier: it
// proves that the binaries hack/testbin.sh builds start, serve the API, and
// store objects, end to end. The test builds with the envtest tag
// (`make test`); without it the package has no tests.
package envtest
