package agent

import "syscall"

// workerProcAttr puts a worker in a process group of its own (a terminal's Ctrl-C is the
// controller's to handle) and has the kernel kill it when the controller dies.
func workerProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}
