package scalebench

import (
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func TestPinClasses(t *testing.T) {
	if p := PinClasses(1); p != nil {
		t.Errorf("one CPU: %v, want no split", p)
	}
	p := PinClasses(4)
	if !slices.Equal(p[ClassGateway], []int{3}) || !slices.Equal(p[ClassGenerator], []int{0, 1, 2}) ||
		!slices.Equal(p[ClassController], []int{0, 1, 2}) || !slices.Equal(p[ClassLeanServer], []int{3}) {
		t.Errorf("four CPUs: %v", p)
	}
	if d := DescribePinning(p); !strings.Contains(d, "CPU 3") || !strings.Contains(d, "CPU 0,1,2") {
		t.Errorf("described as %q", d)
	}
}

// TestPinTasks pins a child process and reads its affinity back.
func TestPinTasks(t *testing.T) {
	if runtime.GOOS != "linux" || runtime.NumCPU() < 2 {
		t.Skip("needs Linux and two CPUs")
	}
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Skipf("no sleep here: %v", err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	pinTasks(cmd.Process.Pid, []int{1})
	st, err := os.ReadFile(procPath(cmd.Process.Pid, "status"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
			if got := strings.TrimSpace(v); got != "1" {
				t.Errorf("pinned to CPUs %q, want 1", got)
			}
			return
		}
	}
	t.Fatal("no Cpus_allowed_list in /proc/PID/status")
}
