//go:build !linux

package scalebench

// pinTasks does nothing off Linux: the bench's processes share every CPU.
func pinTasks(int, []int) {}
