// Package childproc holds how squall starts the processes a run owns (local workers, gateway
// nodes): each in a process group of its own, so that a terminal's Ctrl-C reaches only the parent,
// which stops its children in order; and, on Linux, killed by the kernel when the parent dies.
// Attr is safe to call from any goroutine; each call returns a fresh value.
package childproc
