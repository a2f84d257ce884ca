// Package usage marks errors in what was asked (a flag, a spec, a target that refuses the
// clients' credentials) apart from errors in doing it, so that a command can exit with the usage
// code (2, DESIGN §6) wherever in the stack the mistake was found. It holds no state.
package usage

import (
	"errors"
	"fmt"
)

// Error is an error in what was asked.
type Error struct{ Err error }

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Wrap marks err as a usage error.
func Wrap(err error) error { return &Error{Err: err} }

// Errorf is Wrap(fmt.Errorf(format, a...)).
func Errorf(format string, a ...any) error { return Wrap(fmt.Errorf(format, a...)) }

// Is reports whether err is (or wraps) an Error.
func Is(err error) bool {
	var ue *Error
	return errors.As(err, &ue)
}
