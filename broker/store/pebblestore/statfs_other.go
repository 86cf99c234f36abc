//go:build !unix

package pebblestore

// volumeSpace is unknown (0) where statfs is not available.
func volumeSpace(string) (free, size int64, err error) { return 0, 0, nil }
