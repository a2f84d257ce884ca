package scenarios

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Option overrides part of a scenario file when it is loaded (the command line's --time-scale,
// --flaw and --out). Overrides are validated like the file's own values; problems they cause name
// the flag instead of a line.
type Option func(*Scenario)

// WithTimeScale replaces the file's time_scale by f.
func WithTimeScale(f float64) Option {
	return func(s *Scenario) {
		s.TimeScale = f
		s.override("time_scale", "--time-scale")
	}
}

// WithFlaws replaces the embedded target's flaws by flaws (nil or empty: the clean gateway).
func WithFlaws(flaws []string) Option {
	return func(s *Scenario) {
		s.Target.Flaws = append([]string(nil), flaws...)
		s.override("target.flaws", "--flaw")
	}
}

// WithOut sets the output directory.
func WithOut(dir string) Option {
	return func(s *Scenario) {
		s.Out = dir
		s.override("out", "--out")
	}
}

// WithClientIO replaces the file's client_io (how the generator reads its clients' WebSockets).
func WithClientIO(io string) Option {
	return func(s *Scenario) {
		s.ClientIO = io
		s.override("client_io", "--io")
	}
}

func (s *Scenario) override(path, flag string) {
	if s.overrides == nil {
		s.overrides = map[string]string{}
	}
	s.overrides[path] = flag
}

// Load reads and checks the scenario file at path; see Parse.
func Load(path string, opts ...Option) (*Scenario, error) {
	data, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data, opts...)
}

// ReadFile reads a scenario file, at most one byte past MaxFileBytes (Parse refuses a file that
// large); a file that cannot be read is an Errors naming it.
func ReadFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err == nil {
		defer f.Close()
		var data []byte
		if data, err = io.ReadAll(io.LimitReader(f, MaxFileBytes+1)); err == nil {
			return data, nil
		}
	}
	return nil, Errors{{File: path, Msg: "cannot read: " + strings.TrimPrefix(err.Error(), "open "+path+": ")}}
}

// Parse reads a scenario from data; name (usually the file's path) is used in error messages and as
// the default scenario name. It applies opts, fills in every default, validates, and finally applies
// the time scale (the file's time_scale, or the one given by WithTimeScale), so the returned scenario
// holds the durations that will run and TimeScale holds the factor applied.
//
// On failure the error is Errors, with every problem found in the file, in file order.
func Parse(name string, data []byte, opts ...Option) (*Scenario, error) {
	if errs := checkBounds(name, data); errs != nil {
		return nil, errs
	}
	s := &Scenario{}
	errs := decodeFile(name, data, s)
	for _, e := range errs {
		if e.Path == "" { // the file as a whole could not be read: nothing below would make sense
			return nil, errs
		}
	}
	errs = append(errs, s.parseBounds()...)
	for _, o := range opts {
		o(s)
	}
	if s.Name == "" && name != "" {
		s.Name = strings.TrimSuffix(filepath.Base(name), filepath.Ext(name))
	}
	s.fillDefaults()
	for _, e := range s.check() {
		if !covered(errs, e.Path) {
			errs = append(errs, e)
		}
	}
	if len(errs) > 0 {
		return nil, errs.sorted()
	}
	for _, path := range s.scale(s.TimeScale) {
		errs = append(errs, s.errAt(path, fmt.Sprintf("time_scale %g shrinks this duration to nothing", s.TimeScale)))
	}
	if len(errs) > 0 {
		return nil, errs.sorted()
	}
	return s, nil
}

// covered reports whether a decoding problem was already reported at path or around it, so that a
// value that failed to decode does not also show up as, say, a missing value.
func covered(errs Errors, path string) bool {
	for _, e := range errs {
		if e.Path == "" {
			continue
		}
		if path == e.Path || strings.HasPrefix(path, e.Path+".") || strings.HasPrefix(path, e.Path+"[") ||
			strings.HasPrefix(e.Path, path+".") || strings.HasPrefix(e.Path, path+"[") {
			return true
		}
	}
	return false
}

// ValidateFiles loads every file and prints one line per problem to w (and "ok FILE (...)" for a
// file without any); ok is false when any file has a problem. It is `loadgen validate FILE...`.
func ValidateFiles(paths []string, w io.Writer) (ok bool) {
	ok = true
	for _, p := range paths {
		s, err := Load(p)
		if err == nil {
			fmt.Fprintf(w, "ok %s (%s)\n", p, s.summary())
			continue
		}
		ok = false
		var es Errors
		if errors.As(err, &es) {
			for _, e := range es {
				fmt.Fprintln(w, e.Error())
			}
			continue
		}
		fmt.Fprintln(w, err.Error())
	}
	return ok
}

// summary is a one-line description of a loaded scenario.
func (s *Scenario) summary() string {
	clients := 0
	for _, c := range s.Cohorts {
		clients += c.Count
	}
	return fmt.Sprintf("%s: %d clients in %s, %s of phases, %s, %s",
		s.Name, clients, plural(len(s.Cohorts), "cohort"), formatDuration(s.Duration()), plural(len(s.Timeline), "event"), plural(len(s.SLOs), "SLO"))
}

// plural is "1 cohort", "2 cohorts".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
