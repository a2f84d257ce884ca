package reports

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
// is refused with an error wrapping ErrNewerSchema. Every histogram's encoding is checked, so that
// its Hist does not fail later.
func ParseJSON(data []byte) (*Result, error) {
	var head struct {
		Schema int `json:"schema"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, err
	}
	switch {
	case head.Schema == 0:
		return nil, errors.New("not a result file (no schema version)")
	case head.Schema < 0:
		return nil, fmt.Errorf("schema %d is not a schema version", head.Schema)
	case head.Schema > SchemaVersion:
		return nil, fmt.Errorf("schema %d: %w (this build reads up to %d)", head.Schema, ErrNewerSchema, SchemaVersion)
	case head.Schema == 1:
		var v1 resultV1
		if err := json.Unmarshal(data, &v1); err != nil {
			return nil, err
		}
		return v1.convert(), nil
	}
	var r Result
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, err
	}
	return &r, nil
}
