package cpuprofile

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestStart: with the directory set, the profile is written under the role and pid; an
// unwritable directory is said, not fatal.
func TestStart(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(Env, dir)
	var stderr bytes.Buffer
	Start("worker", &stderr)()
	st, err := os.Stat(filepath.Join(dir, fmt.Sprintf("worker-%d.pprof", os.Getpid())))
	if err != nil || st.Size() == 0 {
		t.Fatalf("profile: %v (size %v)", err, st)
	}
	t.Setenv(Env, filepath.Join(dir, "missing", "dir"))
	Start("worker", &stderr)()
	if !bytes.Contains(stderr.Bytes(), []byte("no CPU profile")) {
		t.Errorf("stderr %q, want the failure said", stderr.String())
	}
}
