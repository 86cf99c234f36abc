//go:build unix

package pebblestore

import "syscall"

// volumeSpace returns the bytes available to an unprivileged process on
// the volume holding dir, and the volume's size.
func volumeSpace(dir string) (free, size int64, err error) {
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err != nil {
		return 0, 0, err
	}
	return int64(fs.Bavail) * int64(fs.Bsize), int64(fs.Blocks) * int64(fs.Bsize), nil //nolint:unconvert // field types differ across platforms
}
