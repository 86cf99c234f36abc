//go:build external

package testenv

// External is true in builds with the external tag (`make test` sets it):
// tests that run programs from outside the module (mosquitto, its
// clients, python3-paho-mqtt, helm, kustomize) run only then, so that
// `make test-fast` needs nothing but Go.
const External = true
