package testbed

import "syscall"

// sysProcAttr has the kernel kill a child process when the thread that started it
// exits, so that a test binary that dies (a test timeout panics) leaves no server
// behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
