//go:build !linux

package testbed

import "syscall"

// sysProcAttr returns nil: only Linux can tie a child's life to the test binary's.
func sysProcAttr() *syscall.SysProcAttr { return nil }
