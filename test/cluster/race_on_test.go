//go:build race

package cluster_test

// raceBuild: the members are built with -race when the tests are.
const raceBuild = true
