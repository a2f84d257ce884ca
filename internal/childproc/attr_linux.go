package childproc

import "syscall"

// Attr returns the attributes of a child process: its own process group, and SIGKILL when the
// parent dies (the kernel ties it to the parent's thread that started it; Go keeps its threads).
func Attr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}
