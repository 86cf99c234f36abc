//go:build race

package engine

// raceBuild: the race detector pads every allocation, so heap measures
// run larger (TestRecoverFleet: about 1.45x).
const raceBuild = true
