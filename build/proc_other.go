//go:build !unix

package build

import "os/exec"

// killGroup leaves cmd as it is: cancellation kills the go command only.
func killGroup(*exec.Cmd) {}
