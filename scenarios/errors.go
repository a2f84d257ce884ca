package scenarios

import (
	"fmt"
	"sort"
	"strings"
)

// Error is one problem with a scenario: where it is (file, line, column, field path) and what was
// expected. Line and Column are 1-based; 0 when unknown (a Scenario built in Go).
type Error struct {
	File   string
	Line   int
	Column int
	// Path is the field path in the file, e.g. "cohorts[0].behaviour.reconnect" ("" for the file as
	// a whole, e.g. a syntax error).
	Path string
	Msg  string
}

// Error formats e as "scenarios: FILE:LINE:COL: PATH: MSG", leaving out the parts that are unknown.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("scenarios: ")
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
			if e.Column > 0 {
				fmt.Fprintf(&b, ":%d", e.Column)
			}
		}
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one scenario, in file order. Load, Parse and Validate return it
// (as error) when there is at least one; use errors.As to get at the list.
type Errors []*Error

// Error joins the problems one per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As find each *Error.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// sorted orders problems by position (problems without a line last, in the order found) and drops
// exact duplicates.
func (es Errors) sorted() Errors {
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i], es[j]
		if (a.Line == 0) != (b.Line == 0) {
			return b.Line == 0
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	out := es[:0]
	for i, e := range es {
		if i > 0 && *e == *es[i-1] {
			continue
		}
		out = append(out, e)
	}
	return out
}

// pos is a position in the file.
type pos struct{ line, col int }

// positions maps field paths to where they were written.
type positions map[string]pos

// lookup returns the position of path, or of its nearest ancestor that was written in the file.
func (p positions) lookup(path string) pos {
	for {
		if q, ok := p[path]; ok {
			return q
		}
		if path == "" {
			return pos{}
		}
		path = parentPath(path)
	}
}

// parentPath strips the last element of a field path: "a.b[2]" → "a.b", "a.b" → "a", "a" → "".
func parentPath(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}
