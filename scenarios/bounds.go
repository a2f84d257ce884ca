package scenarios

import "fmt"

// Bounds on a scenario file, checked before it is parsed: YAML parsing costs grow faster than the
// file (deep nesting is quadratic in the parser), so a hostile or broken file is refused on its size
// and depth instead of being allowed to take the harness's memory and minutes.
const (
	// MaxFileBytes is the largest scenario file accepted (the library's largest is under 10 KB).
	MaxFileBytes = 1 << 20
	// MaxDepth is the deepest nesting of mappings, sequences and flow collections accepted.
	MaxDepth = 64
	// maxTextBytes bounds free-text fields (name, description).
	maxTextBytes = 16 << 10
)

// checkBounds refuses a file that is too large or nested too deeply, naming the line and column
// where the nesting went too deep. It reads the text once: block nesting from indentation and
// sequence dashes, flow nesting from brackets outside quotes and comments.
func checkBounds(file string, data []byte) Errors {
	if len(data) > MaxFileBytes {
		return Errors{{File: file, Msg: fmt.Sprintf("file too large: %d bytes (at most %d: a scenario file is a few kilobytes)", len(data), MaxFileBytes)}}
	}
	var indents []int // indentation of the open block levels
	line, flow := 0, 0
	for start := 0; start < len(data); {
		end := start
		for end < len(data) && data[end] != '\n' {
			end++
		}
		line++
		text := data[start:end]
		start = end + 1
		col := 0
		for col < len(text) && (text[col] == ' ' || text[col] == '\t') {
			col++
		}
		if col == len(text) || text[col] == '#' {
			continue // blank or comment: no structure
		}
		if flow == 0 {
			for len(indents) > 0 && indents[len(indents)-1] >= col {
				indents = indents[:len(indents)-1]
			}
			indents = append(indents, col)
			// "- - a" opens one sequence level per dash.
			for i := col; i+1 < len(text) && text[i] == '-' && (text[i+1] == ' ' || text[i+1] == '\t'); {
				i += 2
				for i < len(text) && text[i] == ' ' {
					i++
				}
				indents = append(indents, i)
			}
		}
		var quote byte
		for i := col; i < len(text); i++ {
			c := text[i]
			switch {
			case quote == '"' && c == '\\':
				i++
			case quote != 0:
				if c == quote {
					quote = 0
				}
			case c == '"' || c == '\'':
				quote = c
			case c == '#' && (i == 0 || text[i-1] == ' ' || text[i-1] == '\t'):
				i = len(text) // a comment runs to the end of the line
			case c == '[' || c == '{':
				flow++
			case c == ']' || c == '}':
				flow = max(flow-1, 0)
			}
			if depth := len(indents) + flow; depth > MaxDepth {
				return Errors{{File: file, Line: line, Column: i + 1,
					Msg: fmt.Sprintf("nested more than %d levels deep (a scenario needs a handful)", MaxDepth)}}
			}
		}
	}
	return nil
}
