package scenarios

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHostileFilesRefusedCheaply feeds files built to exhaust a YAML parser: each is refused with an
// error naming the file (and where the nesting went too deep), quickly. Before the bounds, 100 000
// nested brackets took the parser over a minute and 14 GiB.
func TestHostileFilesRefusedCheaply(t *testing.T) {
	nestedBlocks := func(n int) string {
		var b strings.Builder
		for i := range n {
			b.WriteString(strings.Repeat(" ", i) + "k:\n")
		}
		return b.String()
	}
	tests := []struct {
		name, src, want string
		line            int
	}{
		{"100 000 nested brackets", "name: x\ncohorts: " + strings.Repeat("[", 100000), "nested more than 64 levels", 2},
		{"nested flow mappings", "a: " + strings.Repeat("{b: ", 70), "nested more than 64 levels", 1},
		{"nested blocks", nestedBlocks(70), "nested more than 64 levels", 65},
		{"nested sequences", strings.Repeat("- ", 70) + "x\n", "nested more than 64 levels", 1},
		{"too large", "description: " + strings.Repeat("x", MaxFileBytes), "file too large", 0},
		{"50 MB description", "description: " + strings.Repeat("x", 50<<20), "file too large", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, err := Parse("hostile.yaml", []byte(tt.src))
			var es Errors
			if !errors.As(err, &es) || len(es) != 1 || !strings.Contains(es[0].Msg, tt.want) || es[0].Line != tt.line || es[0].File != "hostile.yaml" {
				t.Fatalf("err %v, want one error at line %d saying %q", err, tt.line, tt.want)
			}
			t.Logf("%s (%v)", es[0], time.Since(start).Round(time.Microsecond))
		})
	}
}

// TestBoundsLeaveRealFilesAlone: brackets and dashes inside quotes and comments are text, and every
// scenario of the library is well within the bounds.
func TestBoundsLeaveRealFilesAlone(t *testing.T) {
	text := "description: \"[[[[ {{{{ " + strings.Repeat("[", 100) + "\"\n# " + strings.Repeat("{", 100) + "\nname: 'a[b'\n"
	if errs := checkBounds("quoted.yaml", []byte(text)); errs != nil {
		t.Errorf("quoted brackets counted as nesting: %v", errs)
	}
	files, _ := filepath.Glob("*.yaml")
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if errs := checkBounds(f, data); errs != nil {
			t.Errorf("%s: %v", f, errs)
		}
	}
}

func TestLongTextRefused(t *testing.T) {
	src := "name: " + strings.Repeat("n", 200) + "\ndescription: " + strings.Repeat("d", maxTextBytes+1) + "\n" +
		"cohorts: [{name: a, count: 1}]\nphases: [{kind: hold, duration: 1s}]\n"
	_, err := Parse("long.yaml", []byte(src))
	if err == nil || !strings.Contains(err.Error(), "name: 200 characters") || !strings.Contains(err.Error(), "description: 16385 bytes") {
		t.Fatalf("err %v", err)
	}
}
