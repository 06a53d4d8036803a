//go:build !linux

package kube

import "syscall"

// sysProcAttr is empty where the kernel cannot kill a component with its parent.
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }
