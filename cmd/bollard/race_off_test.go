//go:build !race

package main

// raceBuild is true when the tests run with -race: the broker binary is
// then built with -race too.
const raceBuild = false
