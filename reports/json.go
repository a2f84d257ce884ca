package reports

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
)

// WriteJSON writes the result to path atomically: into a temporary file in the same directory,
// fsynced, then renamed over path (and the directory fsynced).
func (r *Result) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("reports: encode result: %w", err)
	}
	b = append(b, '\n')
	return WriteFileAtomic(path, b)
}

// WriteFileAtomic writes data to path via a temporary file, fsync and rename.
func WriteFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("reports: write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return fmt.Errorf("reports: write %s: %w", path, err)
	}
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// ErrNewerSchema is returned by ReadJSON for a result written by a newer schema.
var ErrNewerSchema = errors.New("result written by a newer schema")

// ReadJSON reads a result file: the current schema as it is, schema 1 converted into the current
// types (see ParseJSON).
func ReadJSON(path string) (*Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reports: %w", err)
	}
	r, err := ParseJSON(b)
	if err != nil {
		return nil, fmt.Errorf("reports: %s: %w", path, err)
	}
	return r, nil
}

// ParseJSON decodes a result from its JSON form. The Result it returns follows SchemaVersion
// whatever version data was written in: a schema 1 result is converted. A result of a newer schema
// is refused with an error wrapping ErrNewerSchema; data that does not decode, with a *DecodeError
// naming the value at fault. Every histogram's encoding is checked, so that its Hist does not fail
// later.
func ParseJSON(data []byte) (*Result, error) {
	schema, ok := peekSchema(data)
	if !ok { // no schema version, or the document breaks before it: say which
		var head struct {
			Schema int `json:"schema"`
		}
		if err := decodeJSON(data, &head); err != nil {
			return nil, err
		}
		schema = head.Schema
	}
	switch {
	case schema == 0:
		return nil, errors.New("not a result file (no schema version)")
	case schema < 0:
		return nil, fmt.Errorf("schema %d is not a schema version", schema)
	case schema > SchemaVersion:
		return nil, fmt.Errorf("schema %d: %w (this build reads up to %d)", schema, ErrNewerSchema, SchemaVersion)
	case schema == 1:
		var v1 resultV1
		if err := decodeJSON(data, &v1); err != nil {
			return nil, err
		}
		return v1.convert(), nil
	}
	var r Result
	if err := decodeJSON(data, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// peekSchema reads the top-level "schema" of a result without decoding the rest (which may be cut
// short); ok is false when it is not found before the end or a break in the document.
func peekSchema(data []byte) (schema int, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return 0, false
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return 0, false
		}
		if tok == "schema" {
			if err := dec.Decode(&schema); err != nil {
				return 0, false
			}
			return schema, true
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return 0, false
		}
	}
	return 0, false
}

// DecodeError is a result file that does not decode: the value at Path (a JSON path such as
// "series[3].histograms.fanout"; empty for the document itself) starting at Line and Column (from
// 1; Offset in bytes from 0) is malformed, cut short or not of the type the schema wants.
type DecodeError struct {
	Path         string
	Line, Column int
	Offset       int64
	Err          error
}

func (e *DecodeError) Error() string {
	where := e.Path
	if where == "" {
		where = "the document"
	}
	return fmt.Sprintf("%s (line %d, column %d): %v", where, e.Line, e.Column, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// decodeJSON unmarshals data into v (a pointer); when that fails it says where and why.
func decodeJSON(data []byte, v any) error {
	err := json.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	path, off := locate(data, reflect.TypeOf(v).Elem())
	why := err
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset // the very byte; the path is that of the innermost value open there
		if se.Offset >= int64(len(data)) {
			why = fmt.Errorf("%w (the file is cut short)", err)
		}
	case errors.As(err, &te):
		why = fmt.Errorf("want %s, got %s: %w", kindName(te.Type), te.Value, err)
	}
	line, col := lineColumn(data, off)
	return &DecodeError{Path: path, Line: line, Column: col, Offset: off, Err: why}
}

// kindName says what JSON a Go type wants, for error messages.
func kindName(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer (" + t.String() + ")"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return t.String()
}

// lineColumn converts a byte offset of data into a line and a column, both from 1.
func lineColumn(data []byte, off int64) (line, col int) {
	off = min(max(off, 0), int64(len(data)))
	before := data[:off]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(off) - (bytes.LastIndexByte(before, '\n') + 1) + 1
	return line, col
}

// locate returns the JSON path and byte offset of the innermost value of data that does not decode
// as (part of) a value of type t: it walks the document along t's fields, map values and slice
// elements, decoding each on its own, and descends into the one that fails. Values of types that
// decode themselves (time.Time, Histogram, json.RawMessage) are not looked into. It only runs once
// decoding has failed, and its depth is bounded by t's.
func locate(data []byte, t reflect.Type) (string, int64) {
	path, off, _ := find(data, 0, t, "")
	return path, off
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

func find(data []byte, base int64, t reflect.Type, path string) (string, int64, bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if json.Unmarshal(data, reflect.New(t).Interface()) == nil {
		return "", 0, false
	}
	start := skipSpace(data, 0)
	at := base + int64(start)
	d := data[start:]
	pt := reflect.PointerTo(t)
	if len(d) == 0 || pt.Implements(jsonUnmarshaler) || pt.Implements(textUnmarshaler) {
		return path, at, true
	}
	switch {
	case d[0] == '{' && (t.Kind() == reflect.Struct || t.Kind() == reflect.Map && t.Key().Kind() == reflect.String):
		dec := json.NewDecoder(bytes.NewReader(d))
		if _, err := dec.Token(); err != nil {
			return path, at, true
		}
		for dec.More() {
			tok, err := dec.Token()
			key, ok := tok.(string)
			if err != nil || !ok {
				return path, at + dec.InputOffset(), true
			}
			elem, known := t, true
			if t.Kind() == reflect.Struct {
				var f reflect.StructField
				if f, known = fieldByJSONName(t, key); known {
					elem = f.Type
				}
			} else {
				elem = t.Elem()
			}
			p := joinPath(path, key)
			vs := skipValueSeparators(d, int(dec.InputOffset()))
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				if known { // cut short or malformed: look inside what is left
					if sp, so, ok := find(d[vs:], at+int64(vs), elem, p); ok {
						return sp, so, true
					}
				}
				return p, at + int64(vs), true
			}
			if !known {
				continue
			}
			if sp, so, ok := find(raw, at+int64(vs), elem, p); ok {
				return sp, so, true
			}
		}
	case d[0] == '[' && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array):
		dec := json.NewDecoder(bytes.NewReader(d))
		if _, err := dec.Token(); err != nil {
			return path, at, true
		}
		for i := 0; dec.More(); i++ {
			p := path + "[" + strconv.Itoa(i) + "]"
			vs := skipValueSeparators(d, int(dec.InputOffset()))
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				if sp, so, ok := find(d[vs:], at+int64(vs), t.Elem(), p); ok {
					return sp, so, true
				}
				return p, at + int64(vs), true
			}
			if sp, so, ok := find(raw, at+int64(vs), t.Elem(), p); ok {
				return sp, so, true
			}
		}
	}
	return path, at, true
}

// fieldByJSONName finds the field encoding/json decodes key into: the exact name first, then one
// equal under case folding.
func fieldByJSONName(t reflect.Type, key string) (reflect.StructField, bool) {
	var folded reflect.StructField
	found := false
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if name == key {
			return f, true
		}
		if !found && strings.EqualFold(name, key) {
			folded, found = f, true
		}
	}
	return folded, found
}

func joinPath(path, key string) string {
	if strings.ContainsAny(key, ".[]\" ") || key == "" {
		key = strconv.Quote(key)
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

func skipSpace(d []byte, i int) int {
	for i < len(d) && (d[i] == ' ' || d[i] == '\t' || d[i] == '\n' || d[i] == '\r') {
		i++
	}
	return i
}

// skipValueSeparators moves i past white space, ':' and ',' to the start of the next value.
func skipValueSeparators(d []byte, i int) int {
	for i < len(d) && (d[i] == ' ' || d[i] == '\t' || d[i] == '\n' || d[i] == '\r' || d[i] == ':' || d[i] == ',') {
		i++
	}
	return min(i, len(d))
}
