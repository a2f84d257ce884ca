package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/squall-dev/squall/reports"
)

// checkRenderings checks that dir holds every rendering of a result and that stdout named them.
func checkRenderings(t *testing.T, dir, stdout string) {
	t.Helper()
	for _, rd := range reports.Renderings {
		p := filepath.Join(dir, rd.File)
		if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v", p, err)
		}
		if !strings.Contains(stdout, p) {
			t.Errorf("the output does not name %s:\n%s", p, stdout)
		}
	}
}

func TestReportCommand(t *testing.T) {
	src := filepath.Join("..", "..", "reports", "testdata")
	good, err := os.ReadFile(filepath.Join(src, "result.golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	write := func(t *testing.T, data []byte) string {
		p := filepath.Join(t.TempDir(), "result.json")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name   string
		input  func(t *testing.T) string
		code   int
		stderr string // a part of the error line
	}{
		{"schema 2", func(t *testing.T) string { return write(t, good) }, exitOK, ""},
		{"schema 1", func(t *testing.T) string { return filepath.Join(src, "result.v1.json") }, exitOK, ""},
		{"cut short", func(t *testing.T) string { return write(t, good[:len(good)/2]) }, exitUsage, "the file is cut short"},
		{"edited by hand", func(t *testing.T) string {
			return write(t, []byte(strings.Replace(string(good), `"stop_reason": "completed"`, `"stop_reason": 7`, 1)))
		}, exitUsage, "stop_reason (line"},
		{"newer schema", func(t *testing.T) string {
			return write(t, []byte(strings.Replace(string(good), `"schema": 2`, `"schema": 9`, 1)))
		}, exitUsage, "schema 9: result written by a newer schema (this build reads up to 2)"},
		{"not a result", func(t *testing.T) string { return write(t, []byte(`{"hello": 1}`)) }, exitUsage, "no schema version"},
		{"missing", func(t *testing.T) string { return filepath.Join(t.TempDir(), "none.json") }, exitUsage, "no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			code, stdout, stderr := runCLI(context.Background(), "report", tc.input(t), "-o", out)
			if code != tc.code || !strings.Contains(stderr, tc.stderr) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, stderr, tc.code, tc.stderr)
			}
			if code == exitOK {
				checkRenderings(t, out, stdout)
				return
			}
			if entries, _ := os.ReadDir(out); len(entries) != 0 {
				t.Errorf("a result that does not read left %d files in -o", len(entries))
			}
		})
	}
	t.Run("default directory", func(t *testing.T) {
		p := write(t, good)
		code, stdout, stderr := runCLI(context.Background(), "report", p)
		if code != exitOK {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		checkRenderings(t, filepath.Dir(p), stdout)
	})
	t.Run("baseline", func(t *testing.T) {
		out := t.TempDir()
		fx := filepath.Join(src, "report")
		code, stdout, stderr := runCLI(context.Background(), "report", filepath.Join(fx, "smoke-new.result.json"), "-o", out,
			"--baseline", filepath.Join(fx, "smoke-baseline.result.json"))
		if code != exitOK {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		checkRenderings(t, out, stdout)
		md, _ := os.ReadFile(filepath.Join(out, reports.SummaryFileName))
		junit, _ := os.ReadFile(filepath.Join(out, reports.JUnitFileName))
		if !strings.Contains(string(md), "Against the baseline") || !strings.Contains(string(junit), `name="baseline: fanout_latency p99"`) {
			t.Errorf("the renderings do not show the comparison:\n%s", md)
		}
	})
	t.Run("baseline of another plan", func(t *testing.T) {
		out := t.TempDir()
		fx := filepath.Join(src, "report")
		code, _, stderr := runCLI(context.Background(), "report", filepath.Join(fx, "smoke-new.result.json"), "-o", out,
			"--baseline", filepath.Join(fx, "storm.result.json"))
		if code != exitUsage || !strings.Contains(stderr, "their plans differ") {
			t.Errorf("exit %d, stderr %q: want 2 and the plans' differences", code, stderr)
		}
		if entries, _ := os.ReadDir(out); len(entries) != 0 {
			t.Errorf("a refused comparison left %d files", len(entries))
		}
	})
	t.Run("usage", func(t *testing.T) {
		if code, _, stderr := runCLI(context.Background(), "report", filepath.Join(src, "result.golden.json"), "--config", "gate.yaml"); code != exitUsage || !strings.Contains(stderr, "needs --baseline") {
			t.Errorf("--config alone: exit %d %q, want 2", code, stderr)
		}
		if code, _, _ := runCLI(context.Background(), "report"); code != exitUsage {
			t.Errorf("no argument: exit %d, want 2", code)
		}
	})
}
