package scalebench

import (
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// pinTasks sets the CPU affinity of every thread of pid to cpus (a process's threads each have
// their own; threads created later inherit their creator's). Errors (a thread or the process gone
// meanwhile) are ignored: the next sample pins again.
func pinTasks(pid int, cpus []int) {
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	tasks, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "task"))
	if err != nil {
		return
	}
	for _, t := range tasks {
		if tid, err := strconv.Atoi(t.Name()); err == nil {
			_ = unix.SchedSetaffinity(tid, &set)
		}
	}
}
