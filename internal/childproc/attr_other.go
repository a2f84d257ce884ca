//go:build !linux

package childproc

import "syscall"

// Attr returns the attributes of a child process: its own process group. Only Linux can have the
// kernel kill it when the parent dies; elsewhere a child outlives a parent that was killed and
// must be ended by hand.
func Attr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
