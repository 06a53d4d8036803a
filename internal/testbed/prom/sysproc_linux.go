//go:build linux

package prom

import "syscall"

// sysProcAttr makes the kernel kill the child when the thread that started it exits, so
// that a test binary that dies (a test timeout panics) leaves no server behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
