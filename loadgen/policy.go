package loadgen

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// PolicyKind names a reconnect policy.
type PolicyKind string

// Reconnect policies (DESIGN §3).
const (
	// PolicyBackoff waits Initial, then multiplies by Multiplier up to Max, adding a uniform jitter in
	// [0, Jitter) to every delay; it gives up after MaxAttempts. Defaults are the seeds' fix:
	// 1 s, x1.5, cap 30 s, jitter up to 1 s, 7 attempts.
	PolicyBackoff PolicyKind = "backoff"
	// PolicyLadder waits Steps[attempt-1] (the last step repeats): 0, 1, 2, 5, 10, 30 s by default.
	PolicyLadder PolicyKind = "ladder"
	// PolicyConstant waits Initial every time (default 1 s) and gives up after MaxAttempts (default
	// 100): the escalation's bug, everyone retrying in lock-step.
	PolicyConstant PolicyKind = "constant"
	// PolicyImmediate reconnects at once, without limit unless MaxAttempts is set.
	PolicyImmediate PolicyKind = "immediate"
	// PolicyNone never reconnects.
	PolicyNone PolicyKind = "none"
)

// ReconnectPolicy says when a client whose connection dropped tries again. Zero fields take the
// defaults of the Kind; the zero ReconnectPolicy is PolicyBackoff with the seeds' defaults.
// A client never reconnects after a 1000 close, nor after a close code whose protocol.CloseInfo says
// not to; a retry_after_ms hint in the close reason raises the delay to at least the hint.
type ReconnectPolicy struct {
	Kind PolicyKind `json:"kind,omitempty"`
	// Initial is the first delay (backoff, default 1 s) or every delay (constant, default 1 s).
	Initial time.Duration `json:"initial,omitempty"`
	// Multiplier grows the backoff delay per attempt (default 1.5).
	Multiplier float64 `json:"multiplier,omitempty"`
	// Max caps the backoff delay before jitter (default 30 s).
	Max time.Duration `json:"max,omitempty"`
	// Jitter is the upper bound of the uniform jitter added to backoff delays (default 1 s; a negative
	// value means none).
	Jitter time.Duration `json:"jitter,omitempty"`
	// Steps are the ladder's delays (default 0, 1, 2, 5, 10, 30 s).
	Steps []time.Duration `json:"steps,omitempty"`
	// MaxAttempts bounds consecutive failed attempts (backoff 7, constant 100, ladder and immediate
	// unlimited by default); a negative value means unlimited.
	MaxAttempts int `json:"max_attempts,omitempty"`
}

// DefaultLadder is the ladder policy's default steps.
var DefaultLadder = []time.Duration{0, time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second}

// withDefaults returns p with every zero field replaced by its kind's default.
func (p ReconnectPolicy) withDefaults() ReconnectPolicy {
	if p.Kind == "" {
		p.Kind = PolicyBackoff
	}
	switch p.Kind {
	case PolicyBackoff:
		if p.Initial == 0 {
			p.Initial = time.Second
		}
		if p.Multiplier == 0 {
			p.Multiplier = 1.5
		}
		if p.Max == 0 {
			p.Max = 30 * time.Second
		}
		if p.Jitter == 0 {
			p.Jitter = time.Second
		}
		if p.MaxAttempts == 0 {
			p.MaxAttempts = 7
		}
	case PolicyConstant:
		if p.Initial == 0 {
			p.Initial = time.Second
		}
		if p.MaxAttempts == 0 {
			p.MaxAttempts = 100
		}
	case PolicyLadder:
		if len(p.Steps) == 0 {
			p.Steps = DefaultLadder
		}
	}
	if p.MaxAttempts == 0 {
		p.MaxAttempts = -1
	}
	return p
}

// Validate reports the first problem with p.
func (p ReconnectPolicy) Validate() error {
	switch p.Kind {
	case "", PolicyBackoff, PolicyLadder, PolicyConstant, PolicyImmediate, PolicyNone:
	default:
		return fmt.Errorf("unknown reconnect policy %q (want backoff, ladder, constant, immediate or none)", p.Kind)
	}
	if p.Initial < 0 || p.Max < 0 {
		return fmt.Errorf("reconnect policy %s: negative delay", p.Kind)
	}
	if p.Multiplier != 0 && p.Multiplier < 1 {
		return fmt.Errorf("reconnect policy %s: multiplier %v below 1", p.Kind, p.Multiplier)
	}
	for _, s := range p.Steps {
		if s < 0 {
			return fmt.Errorf("reconnect policy %s: negative ladder step %v", p.Kind, s)
		}
	}
	return nil
}

// Delay returns how long to wait before reconnect attempt number attempt (1 for the first attempt
// after a drop), drawing jitter from rng; ok is false when the policy gives up instead.
func (p ReconnectPolicy) Delay(attempt int, rng *rand.Rand) (d time.Duration, ok bool) {
	p = p.withDefaults()
	if attempt < 1 {
		attempt = 1
	}
	if p.Kind == PolicyNone || (p.MaxAttempts >= 0 && attempt > p.MaxAttempts) {
		return 0, false
	}
	switch p.Kind {
	case PolicyBackoff:
		f := float64(p.Initial) * math.Pow(p.Multiplier, float64(attempt-1))
		if f > float64(p.Max) {
			f = float64(p.Max)
		}
		d = time.Duration(f)
		if p.Jitter > 0 && rng != nil {
			d += time.Duration(rng.Int64N(int64(p.Jitter)))
		}
	case PolicyLadder:
		i := attempt - 1
		if i >= len(p.Steps) {
			i = len(p.Steps) - 1
		}
		d = p.Steps[i]
	case PolicyConstant:
		d = p.Initial
	case PolicyImmediate:
		d = 0
	}
	return d, true
}
