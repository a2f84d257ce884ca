// Package cpuprofile lets every process of a run write a CPU profile of its whole life when the
// environment asks for one: with $SQUALL_CPU_PROFILE_DIR set, Start writes DIR/ROLE-PID.pprof
// (for `go tool pprof`) until its stop function is called, which also writes
// DIR/ROLE-PID.allocs.pprof, the allocations of the process's life (`go tool pprof
// -sample_index=alloc_space`; gateway nodes and workers keep sampling allocations while the
// variable is set). The run's controller, its workers and its gateway nodes inherit the
// environment, so one variable profiles them all. A process killed rather than stopped writes
// none. Call Start once, from main.
package cpuprofile

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
)

// Env names the directory the profiles go to.
const Env = "SQUALL_CPU_PROFILE_DIR"

// Start starts the profile Env asks for, if any, naming it after role (a subcommand, the binary);
// what fails is said on stderr and the process runs on without a profile.
func Start(role string, stderr io.Writer) (stop func()) {
	dir := os.Getenv(Env)
	if dir == "" {
		return func() {}
	}
	path := filepath.Join(dir, fmt.Sprintf("%s-%d.pprof", role, os.Getpid()))
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %s: no CPU profile: %v\n", role, Env, err)
		if f != nil {
			_ = f.Close()
		}
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
		if af, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s-%d.allocs.pprof", role, os.Getpid()))); err == nil {
			_ = pprof.Lookup("allocs").WriteTo(af, 0)
			_ = af.Close()
		}
	}
}
