//go:build !external

package testenv

// External is false without the external tag: `make test-fast` skips the
// tests that run programs from outside the module. See external.go.
const External = false
