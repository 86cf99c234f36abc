//go:build linux && !race

package engine

import (
	"syscall"
	"unsafe"
)

// sysWrite writes b to the non-blocking socket fd without telling the Go
// scheduler about the system call (RawSyscall, not Syscall): such a write
// never blocks, and the scheduler's bookkeeping of a system call cost
// more than the write on the path of one message. Syscall's entry wakes
// the runtime's monitor thread (sysmon) whenever it sleeps because every
// P was idle, which at one message in flight is before nearly every
// message; and a loopback write that runs the receiver's side of TCP and
// is preempted by the reader it woke can outlast sysmon's 20 µs tick, so
// sysmon hands the P to another thread and the write's return waits to
// get one back. With RawSyscall neither happens; the price is that the
// goroutine cannot be preempted during the write, which the kernel ends
// without waiting (EAGAIN when the socket buffer is full). A write of more
// than rawSyscallMax bytes (a copy long enough for the scheduler to hand
// the P to another thread meanwhile) goes through Syscall as before.
//
// Race-detector builds keep Syscall (rawsys_other.go): syscall.Write and
// Read tell the detector that a write to a socket happens before a read
// of it in the same process, and tests that drive the broker through
// in-process clients order their own memory accesses by that.
func sysWrite(fd uintptr, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	if len(b) > rawSyscallMax {
		return syscall.Write(int(fd), b)
	}
	n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	if errno != 0 {
		return -1, errno
	}
	return int(n), nil
}

// rawSyscallMax bounds the bytes of one read or write by RawSyscall: the
// packets of a message in flight are far smaller, and a larger copy is
// long enough to be worth the scheduler's bookkeeping.
const rawSyscallMax = 64 << 10

// sysRead reads into b from the non-blocking socket fd without telling
// the Go scheduler (see sysWrite); a read into more than rawSyscallMax
// bytes (a large payload read straight into its slice) uses Syscall.
func sysRead(fd uintptr, b []byte) (int, error) {
	if len(b) > rawSyscallMax {
		return syscall.Read(int(fd), b)
	}
	n, _, errno := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	if errno != 0 {
		return -1, errno
	}
	return int(n), nil
}
