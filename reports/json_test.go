package reports

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// TestReadJSONErrors checks that a result that cannot be read says why and where: the JSON path of
// the value at fault with its line and column, for files cut short or edited by hand, in either
// schema.
func TestReadJSONErrors(t *testing.T) {
	v2, err := os.ReadFile(filepath.Join("testdata", "result.golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	v1, err := os.ReadFile(filepath.Join("testdata", "result.v1.json"))
	if err != nil {
		t.Fatal(err)
	}
	edit := func(doc []byte, old, new string) string {
		t.Helper()
		if !strings.Contains(string(doc), old) {
			t.Fatalf("the test file lacks %q", old)
		}
		return strings.Replace(string(doc), old, new, 1)
	}
	small := hdrhistogram.New(1, 1000, 2)
	_ = small.RecordValue(5)
	foreign, err := small.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		doc  string
		path string // DecodeError.Path; "-" when the error is not a DecodeError
		line int    // 0: not checked
		want string
	}{
		{"not json", "{", "", 1, "cut short"},
		{"empty", "", "", 1, "cut short"},
		{"not an object", "[1, 2]", "", 1, "want an object, got array"},
		{"no schema", "{}", "-", 0, "no schema version"},
		{"schema not a number", `{"schema": "2"}`, "schema", 1, "want an integer (int), got string"},
		{"negative schema", `{"schema": -1}`, "-", 0, "not a schema version"},
		{"newer schema", `{"schema": 999}`, "-", 0, "newer schema"},
		{"cut short in the series", string(v2[:strings.Index(string(v2), `"second": 2`)+20]), "series[1]", 0, "cut short"},
		{"cut short in a histogram", string(v2[:strings.Index(string(v2), `HISTFAAAADZ4AQT`)+5]), "series[0].histograms.fanout", 0, "cut short"},
		{"duration as text", edit(v2, `"duration_ns": 2000000000`, `"duration_ns": "2s"`), "duration_ns", 41, "want an integer (time.Duration), got string"},
		{"time not a time", edit(v2, `"started": "2026-01-02T03:04:05Z"`, `"started": "yesterday"`), "started", 39, `cannot parse "yesterday"`},
		{"counter not an integer", edit(v2, `"connects": 2`, `"connects": 2.5`), "stats.counters.connects", 0, "got number 2.5"},
		{"histogram edited", edit(v2, `HISTFAAAADd4AQTAQRGAIBAAwD3PBn4NYQN/JGOGABQgBj0oQgT2rf3BDUhAkOWbw7+BtuI6AQAA//9kkgWs`, `HISTFAAAADd4AQTAQRGAIBAAwD3PBn4NYQN/JGOGABQgBj0oQgT2rf3BDUhAkOWbw7+BtuI6AQAA//9kkgWx`),
			"series[1].histograms.fanout", 0, "hdr: "},
		{"histogram not base64", edit(v2, `HISTFAAAADd4AQTAQRGAIBAAwD3PBn4NYQN/JGOGABQgBj0oQgT2rf3BDUhAkOWbw7+BtuI6AQAA//9kkgWs`, `not a histogram`),
			"series[1].histograms.fanout", 0, "hdr: illegal base64"},
		{"histogram of another geometry", edit(v2, `HISTFAAAADd4AQTAQRGAIBAAwD3PBn4NYQN/JGOGABQgBj0oQgT2rf3BDUhAkOWbw7+BtuI6AQAA//9kkgWs`, string(foreign)),
			"series[1].histograms.fanout", 0, "geometry"},
		{"stray character", edit(v2, `"gauges": {`, `"gauges": x{`), "stats.gauges", 0, "invalid character 'x'"},
		{"schema 1 fault edited", edit(v1, `"at_seconds": 1.5`, `"at_seconds": "1.5s"`), "events[2].fault.at_seconds", 0, "got string"},
		{"schema 1 summary edited", edit(v1, `"LagP99": 60000000`, `"LagP99": true`), "workers[0].summary.LagP99", 0, "got bool"},
	}
	dir := t.TempDir()
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".json")
			if err := os.WriteFile(path, []byte(tc.doc), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := ReadJSON(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("case %d: err %v, want one naming the file and containing %q", i, err, tc.want)
			}
			var de *DecodeError
			switch {
			case tc.path == "-":
				if errors.As(err, &de) {
					t.Errorf("a DecodeError for a file that decodes: %v", err)
				}
			case !errors.As(err, &de):
				t.Errorf("not a DecodeError: %v", err)
			case de.Path != tc.path || (tc.line != 0 && de.Line != tc.line) || de.Line < 1 || de.Column < 1:
				t.Errorf("at %q line %d column %d, want %q line %d: %v", de.Path, de.Line, de.Column, tc.path, tc.line, err)
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		if _, err := ReadJSON(filepath.Join(dir, "nope.json")); err == nil || !strings.Contains(err.Error(), "no such file") {
			t.Errorf("err %v", err)
		}
	})
	t.Run("newer schema is ErrNewerSchema", func(t *testing.T) {
		if _, err := ParseJSON([]byte(`{"schema": 3}`)); !errors.Is(err, ErrNewerSchema) {
			t.Errorf("err %v", err)
		}
	})
}

func TestLineColumn(t *testing.T) {
	doc := []byte("ab\ncd\n\nef")
	for _, tc := range []struct {
		off       int64
		line, col int
	}{{0, 1, 1}, {1, 1, 2}, {3, 2, 1}, {4, 2, 2}, {6, 3, 1}, {7, 4, 1}, {9, 4, 3}, {99, 4, 3}, {-1, 1, 1}} {
		if l, c := lineColumn(doc, tc.off); l != tc.line || c != tc.col {
			t.Errorf("offset %d: line %d column %d, want %d %d", tc.off, l, c, tc.line, tc.col)
		}
	}
}
