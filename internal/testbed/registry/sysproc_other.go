//go:build !linux

package registry

import "syscall"

// sysProcAttr returns nil: only Linux can tie the child's life to the test binary's.
func sysProcAttr() *syscall.SysProcAttr { return nil }
