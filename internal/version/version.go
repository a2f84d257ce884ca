// Package version says which build of squall is running: the release version stamped at build time
// (the Makefile sets Version and commit with -ldflags "-X .../internal/version.Version=..."), the
// commit (else the one the Go toolchain recorded from the work tree), and the Go version. Both binaries answer --version with
// String, and results record it.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is the release version, set at build time ("dev" for a plain go build).
var Version = "dev"

// commit is the revision stamped at build time, for builds where the toolchain records none
// (-buildvcs=false).
var commit string

// Commit is the VCS revision the binary was built from, with "-dirty" when the work tree had
// uncommitted changes; "unknown" when neither the build stamped it nor the toolchain recorded it
// (go run, go test).
func Commit() string {
	if commit != "" {
		return commit
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	rev, dirty := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "unknown"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
}

// String is the one line a binary prints for --version: "NAME VERSION (commit C, goX.Y.Z)".
func String(name string) string {
	return fmt.Sprintf("%s %s (commit %s, %s)", name, Version, Commit(), runtime.Version())
}
