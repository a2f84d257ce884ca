//go:build !linux

package agent

import "syscall"

// workerProcAttr puts a worker in a process group of its own (a terminal's Ctrl-C is the
// controller's to handle). Only Linux can have the kernel kill it when the controller dies; elsewhere
// a worker outlives a controller that was killed and must be ended by hand.
func workerProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
