package scenarios

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the loader: it must never panic, every problem must be an
// *Error naming the file, and a scenario it accepts must validate again unchanged.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("*.yaml")
	more, _ := filepath.Glob("testdata/invalid/*.yaml")
	for _, p := range append(seeds, more...) {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("a: &x [*x]"))
	f.Add([]byte("<<: *nowhere\n"))
	f.Add([]byte("cohorts: [{name: a, count: 1, behaviour: {<<: {payload: 3}}}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse("fuzz.yaml", data)
		if err != nil {
			var es Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Fatalf("error %T %v is not a non-empty Errors", err, err)
			}
			for _, e := range es {
				if e.File != "fuzz.yaml" || e.Msg == "" {
					t.Fatalf("bad error %#v", e)
				}
			}
			return
		}
		if s == nil {
			t.Fatal("nil scenario without error")
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("accepted scenario fails Validate: %v", err)
		}
	})
}
