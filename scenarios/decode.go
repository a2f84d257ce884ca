package scenarios

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// The decoder binds goccy/go-yaml's AST onto the Scenario types itself instead of going through
// yaml.Unmarshal, for two reasons: it reports every problem of a file at once (an unknown field does
// not hide a bad duration three lines further down), and it records where each field was written,
// so that validation errors found later point at the line too.

// maxNodes bounds the work on one file (aliases can make a small file expand).
const maxNodes = 200_000

type decoder struct {
	file    string
	anchors map[string]ast.Node
	pos     positions
	errs    Errors
	nodes   int
}

func (d *decoder) errorf(n ast.Node, path, format string, a ...any) {
	e := &Error{File: d.file, Path: path, Msg: fmt.Sprintf(format, a...)}
	if n != nil {
		if tk := n.GetToken(); tk != nil && tk.Position != nil {
			e.Line, e.Column = tk.Position.Line, tk.Position.Column
		}
	}
	d.errs = append(d.errs, e)
}

func (d *decoder) record(path string, n ast.Node) {
	if path == "" {
		return // a field missing at the top has no better place than the file itself
	}
	if tk := n.GetToken(); tk != nil && tk.Position != nil {
		d.pos[path] = pos{tk.Position.Line, tk.Position.Column}
	}
}

// decodeFile parses data and binds it onto s, recording positions; it returns every problem found.
func decodeFile(file string, data []byte, s *Scenario) Errors {
	pos, errs := decodeYAML(file, data, s, "a scenario: name, cohorts, phases, slos, ...", "one scenario per file")
	s.file, s.pos = file, pos
	return errs
}

// decodeYAML parses data, a file holding one YAML document (want says what it should hold, one
// says "one X per file"), and binds it onto the yaml-tagged struct v points to; it returns where
// every field was written and every problem found.
func decodeYAML(file string, data []byte, v any, want, one string) (positions, Errors) {
	d := &decoder{file: file, anchors: map[string]ast.Node{}, pos: positions{}}
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		e := &Error{File: file, Msg: "syntax error: " + err.Error()}
		var se *yaml.SyntaxError
		if errors.As(err, &se) {
			e.Msg = "syntax error: " + se.Message
			if se.Token != nil && se.Token.Position != nil {
				e.Line, e.Column = se.Token.Position.Line, se.Token.Position.Column
			}
		}
		return d.pos, Errors{e}
	}
	var docs []ast.Node
	for _, doc := range f.Docs {
		if doc != nil && doc.Body != nil {
			docs = append(docs, doc.Body)
		}
	}
	switch {
	case len(docs) == 0:
		return d.pos, Errors{{File: file, Msg: "empty file (want " + want + ")"}}
	case len(docs) > 1:
		d.errorf(docs[1], "", "more than one YAML document (want %s)", one)
		return d.pos, d.errs
	}
	ast.Walk(anchorCollector(d.anchors), docs[0])
	d.value(docs[0], reflect.ValueOf(v).Elem(), "")
	return d.pos, d.errs
}

type anchorCollector map[string]ast.Node

func (c anchorCollector) Visit(n ast.Node) ast.Visitor {
	if a, ok := n.(*ast.AnchorNode); ok && a.Name != nil {
		c[a.Name.GetToken().Value] = a.Value
	}
	return c
}

var (
	durationType = reflect.TypeOf(time.Duration(0))
	boundType    = reflect.TypeOf(Bound{})
)

// shorthand is implemented by types that may be written as one word instead of a mapping.
type shorthand interface{ fromScalar(string) }

// resolve follows tags, anchors and aliases to the node that holds the value.
func (d *decoder) resolve(n ast.Node, path string) (ast.Node, bool) {
	for depth := 0; depth < 32; depth++ {
		switch t := n.(type) {
		case *ast.TagNode:
			n = t.Value
		case *ast.AnchorNode:
			n = t.Value
		case *ast.AliasNode:
			name := t.Value.GetToken().Value
			target, ok := d.anchors[name]
			if !ok {
				d.errorf(n, path, "unknown alias *%s", name)
				return nil, false
			}
			n = target
		default:
			return n, n != nil
		}
		if n == nil {
			return nil, false
		}
	}
	d.errorf(n, path, "aliases nested too deep")
	return nil, false
}

func isNull(n ast.Node) bool { _, ok := n.(*ast.NullNode); return ok }

// value binds node n onto v (settable) at field path.
func (d *decoder) value(n ast.Node, v reflect.Value, path string) {
	if d.nodes++; d.nodes > maxNodes {
		if d.nodes == maxNodes+1 {
			d.errorf(n, path, "file too large (more than %d values once aliases are expanded)", maxNodes)
		}
		return
	}
	orig := n
	n, ok := d.resolve(n, path)
	if !ok {
		return
	}
	d.record(path, orig)
	if isNull(n) {
		return // "key:" with nothing keeps the zero value
	}
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		v = v.Elem()
	}
	switch {
	case v.Type() == durationType:
		d.duration(n, v, path)
		return
	case v.Type() == boundType:
		s, ok := scalarText(n)
		if !ok {
			d.errorf(n, path, `want a bound such as "<= 45s" or "== 0", got %s`, describe(n))
			return
		}
		v.Addr().Interface().(shorthand).fromScalar(s)
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		if sh, ok := v.Addr().Interface().(shorthand); ok {
			if s, isScalar := scalarText(n); isScalar {
				sh.fromScalar(s)
				return
			}
		}
		d.structure(n, v, path)
	case reflect.Map:
		d.mapping(n, v, path)
	case reflect.Slice:
		seq, ok := n.(*ast.SequenceNode)
		if !ok {
			d.errorf(n, path, "want a list, got %s", describe(n))
			return
		}
		out := reflect.MakeSlice(v.Type(), len(seq.Values), len(seq.Values))
		for i, item := range seq.Values {
			d.value(item, out.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(out)
	case reflect.String:
		s, ok := scalarText(n)
		if !ok {
			d.errorf(n, path, "want a string, got %s", describe(n))
			return
		}
		v.SetString(s)
	case reflect.Bool:
		b, ok := n.(*ast.BoolNode)
		if !ok {
			d.errorf(n, path, "want true or false, got %s", describe(n))
			return
		}
		v.SetBool(b.Value)
	case reflect.Int, reflect.Int64:
		i, ok := intValue(n)
		if !ok || v.OverflowInt(i) {
			d.errorf(n, path, "want an integer, got %s", describe(n))
			return
		}
		v.SetInt(i)
	case reflect.Uint64:
		u, ok := uintValue(n)
		if !ok {
			d.errorf(n, path, "want a non-negative integer, got %s", describe(n))
			return
		}
		v.SetUint(u)
	case reflect.Float64:
		f, ok := floatValue(n)
		if !ok {
			d.errorf(n, path, "want a number, got %s", describe(n))
			return
		}
		v.SetFloat(f)
	default:
		d.errorf(n, path, "cannot hold a value here") // a type the scenario format does not use
	}
}

func (d *decoder) duration(n ast.Node, v reflect.Value, path string) {
	s, ok := scalarText(n)
	if !ok {
		d.errorf(n, path, "want a duration such as 30s or 250ms, got %s", describe(n))
		return
	}
	dur, err := time.ParseDuration(s)
	if err != nil {
		if _, isInt := n.(*ast.IntegerNode); isInt || isFloat(n) {
			d.errorf(n, path, "bad duration %s: a number needs a unit (want a Go duration such as 30s or 250ms)", s)
		} else {
			d.errorf(n, path, "bad duration %q (want a Go duration such as 30s or 250ms)", s)
		}
		return
	}
	v.SetInt(int64(dur))
}

func isFloat(n ast.Node) bool { _, ok := n.(*ast.FloatNode); return ok }

// structure binds a mapping onto the yaml-tagged fields of a struct.
func (d *decoder) structure(n ast.Node, v reflect.Value, path string) {
	fields := yamlFields(v.Type())
	seen := map[string]bool{}
	var entries []*ast.MappingValueNode
	switch m := n.(type) {
	case *ast.MappingNode:
		entries = m.Values
	case *ast.MappingValueNode:
		entries = []*ast.MappingValueNode{m}
	default:
		d.errorf(n, path, "want a mapping with %s, got %s", wantFields(fields), describe(n))
		return
	}
	for _, e := range d.expandMerges(entries, path, 0) {
		key, ok := scalarText(e.Key)
		if !ok {
			d.errorf(e.Key, path, "want a field name, got %s", describe(e.Key))
			continue
		}
		child := join(path, key)
		idx, known := fields[key]
		if !known {
			d.errorf(e.Key, child, "unknown field %q (%s)", key, suggest(key, fields))
			continue
		}
		if seen[key] {
			d.errorf(e.Key, child, "field written twice")
			continue
		}
		seen[key] = true
		d.pos[child] = keyPos(e)
		d.value(e.Value, v.Field(idx), child)
		// A collection's position is its key's; a scalar's is the value's (set by value).
		if _, scalar := scalarText(e.Value); !scalar {
			d.pos[child] = keyPos(e)
		}
	}
}

// mapping binds a mapping onto a map with string keys: each key is a field of its own in paths
// ("metrics.fanout_latency p99").
func (d *decoder) mapping(n ast.Node, v reflect.Value, path string) {
	if v.Type().Key().Kind() != reflect.String {
		d.errorf(n, path, "cannot hold a value here")
		return
	}
	var entries []*ast.MappingValueNode
	switch m := n.(type) {
	case *ast.MappingNode:
		entries = m.Values
	case *ast.MappingValueNode:
		entries = []*ast.MappingValueNode{m}
	default:
		d.errorf(n, path, "want a mapping, got %s", describe(n))
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(v.Type()))
	}
	for _, e := range d.expandMerges(entries, path, 0) {
		key, ok := scalarText(e.Key)
		if !ok || key == "" {
			d.errorf(e.Key, path, "want a name, got %s", describe(e.Key))
			continue
		}
		child := join(path, key)
		k := reflect.ValueOf(key).Convert(v.Type().Key())
		if v.MapIndex(k).IsValid() {
			d.errorf(e.Key, child, "written twice")
			continue
		}
		d.pos[child] = keyPos(e)
		elem := reflect.New(v.Type().Elem()).Elem()
		d.value(e.Value, elem, child)
		d.pos[child] = keyPos(e)
		v.SetMapIndex(k, elem)
	}
}

func keyPos(e *ast.MappingValueNode) pos {
	if tk := e.Key.GetToken(); tk != nil && tk.Position != nil {
		return pos{tk.Position.Line, tk.Position.Column}
	}
	return pos{}
}

// expandMerges replaces "<<: *anchor" entries by the entries of the anchored mapping (the mapping's
// own entries, which follow, override them: a field written twice that way is allowed).
func (d *decoder) expandMerges(entries []*ast.MappingValueNode, path string, depth int) []*ast.MappingValueNode {
	var out []*ast.MappingValueNode
	var merged []*ast.MappingValueNode
	for _, e := range entries {
		if _, isMerge := e.Key.(*ast.MergeKeyNode); !isMerge {
			out = append(out, e)
			continue
		}
		if depth > 8 {
			d.errorf(e.Key, path, "merge keys nested too deep")
			continue
		}
		target, ok := d.resolve(e.Value, path)
		if !ok {
			continue
		}
		switch m := target.(type) {
		case *ast.MappingNode:
			merged = append(merged, d.expandMerges(m.Values, path, depth+1)...)
		case *ast.MappingValueNode:
			merged = append(merged, m)
		default:
			d.errorf(e.Value, path, "merge key needs a mapping, got %s", describe(target))
		}
	}
	// Keep a merged entry only when the mapping does not write the same key itself.
	own := map[string]bool{}
	for _, e := range out {
		if k, ok := scalarText(e.Key); ok {
			own[k] = true
		}
	}
	var keep []*ast.MappingValueNode
	for _, e := range merged {
		if k, ok := scalarText(e.Key); ok && own[k] {
			continue
		}
		keep = append(keep, e)
	}
	return append(keep, out...)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// yamlFields maps yaml names to field indexes of struct type t.
func yamlFields(t reflect.Type) map[string]int {
	out := map[string]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "" || name == "-" {
			continue
		}
		out[name] = i
	}
	return out
}

func sortedNames(fields map[string]int) []string {
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool { return fields[names[i]] < fields[names[j]] })
	return names
}

func wantFields(fields map[string]int) string {
	names := sortedNames(fields)
	if len(names) > 6 {
		return strings.Join(names[:6], ", ") + ", ..."
	}
	return strings.Join(names, ", ")
}

// suggest proposes the closest known field name, or lists them.
func suggest(key string, fields map[string]int) string {
	best, bestDist := "", 3
	for _, name := range sortedNames(fields) {
		if dist := editDistance(strings.ToLower(key), name); dist < bestDist {
			best, bestDist = name, dist
		}
	}
	if best != "" {
		return fmt.Sprintf("did you mean %q?", best)
	}
	return "want " + orList(sortedNames(fields))
}

// orList formats names as "a, b or c".
func orList(names []string) string {
	switch len(names) {
	case 0:
		return ""
	case 1:
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// scalarText returns the text of a scalar node as written (strings unquoted); ok is false for
// collections.
func scalarText(n ast.Node) (string, bool) {
	switch t := n.(type) {
	case *ast.StringNode:
		return t.Value, true
	case *ast.LiteralNode:
		if t.Value == nil {
			return "", true
		}
		return t.Value.Value, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		return n.GetToken().Value, true
	case *ast.NullNode:
		return "", true
	case *ast.TagNode:
		return scalarText(t.Value)
	case *ast.AnchorNode:
		return scalarText(t.Value)
	}
	return "", false
}

func intValue(n ast.Node) (int64, bool) {
	switch t := n.(type) {
	case *ast.IntegerNode:
		switch x := t.Value.(type) {
		case int64:
			return x, true
		case uint64:
			if x <= math.MaxInt64 {
				return int64(x), true
			}
		}
	case *ast.FloatNode:
		if t.Value == math.Trunc(t.Value) && math.Abs(t.Value) < 1<<53 {
			return int64(t.Value), true
		}
	}
	return 0, false
}

func uintValue(n ast.Node) (uint64, bool) {
	if t, ok := n.(*ast.IntegerNode); ok {
		switch x := t.Value.(type) {
		case int64:
			if x >= 0 {
				return uint64(x), true
			}
		case uint64:
			return x, true
		}
	}
	return 0, false
}

func floatValue(n ast.Node) (float64, bool) {
	switch t := n.(type) {
	case *ast.FloatNode:
		return t.Value, true
	case *ast.IntegerNode:
		switch x := t.Value.(type) {
		case int64:
			return float64(x), true
		case uint64:
			return float64(x), true
		}
	}
	return 0, false
}

// describe names what a node holds, for "got ..." in messages.
func describe(n ast.Node) string {
	switch t := n.(type) {
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.NullNode:
		return "nothing"
	case *ast.StringNode:
		return strconv.Quote(t.Value)
	case *ast.LiteralNode:
		return "a text block"
	}
	if s, ok := scalarText(n); ok {
		return s
	}
	return "a " + n.Type().String()
}
