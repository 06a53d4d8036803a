package kube

import "syscall"

// sysProcAttr has the kernel kill a component when the test binary dies without
// stopping it (a test timeout panics), so no control plane outlives its tests.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
