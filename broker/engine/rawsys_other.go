//go:build unix && (!linux || race)

package engine

import "syscall"

// sysWrite writes b to the non-blocking socket fd through the scheduler's
// Syscall: outside Linux, and in race-detector builds (see
// rawsys_linux.go).
func sysWrite(fd uintptr, b []byte) (int, error) {
	return syscall.Write(int(fd), b)
}

// sysRead reads into b from the non-blocking socket fd.
func sysRead(fd uintptr, b []byte) (int, error) {
	return syscall.Read(int(fd), b)
}

// rawSyscallMax is the bound of rawsys_linux.go (tests read past it).
const rawSyscallMax = 64 << 10
