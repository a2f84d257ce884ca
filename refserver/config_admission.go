package refserver

import "time"

// Shed modes (Config.ShedMode).
const (
	// ShedHTTP answers a shed attempt with HTTP 503 and Retry-After before the upgrade (cheapest).
	ShedHTTP = "http"
	// ShedClose upgrades a shed attempt and closes it at once with 1013 "shed retry_after_ms=N", a
	// hint browsers can read (they do not see the status of a refused upgrade).
	ShedClose = "close"
)

// admissionDefaults fills the auth, admission and storm settings of c from d.
func (c *Config) admissionDefaults(d Config) {
	if c.AuthCacheTTL == 0 {
		c.AuthCacheTTL = d.AuthCacheTTL
	}
	if c.AuthCacheSize == 0 {
		c.AuthCacheSize = d.AuthCacheSize
	}
	if c.AuthBreakerFailures == 0 {
		c.AuthBreakerFailures = d.AuthBreakerFailures
	}
	if c.AuthBreakerCooldown == 0 {
		c.AuthBreakerCooldown = d.AuthBreakerCooldown
	}
	if c.AcceptRate == 0 {
		c.AcceptRate = d.AcceptRate
	}
	if c.AcceptBurst == 0 {
		c.AcceptBurst = d.AcceptBurst
	}
	if c.ShedMode == "" {
		c.ShedMode = d.ShedMode
	}
	if c.StormAlertRate == 0 {
		c.StormAlertRate = d.StormAlertRate
	}
	if c.StormAlertBurst == 0 {
		c.StormAlertBurst = d.StormAlertBurst
	}
	if c.StormAlertWindow == 0 {
		c.StormAlertWindow = d.StormAlertWindow
	}
}

// validateAdmission reports the problems of the auth, admission and storm settings of v (defaults
// already filled in).
func (v Config) validateAdmission(bad func(format string, args ...any)) {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"auth-latency", v.AuthLatency}, {"auth-cache-ttl", v.AuthCacheTTL},
		{"auth-breaker-cooldown", v.AuthBreakerCooldown}, {"storm-alert-window", v.StormAlertWindow},
	} {
		if d.v < 0 {
			bad("%s: must not be negative, got %s", d.name, d.v)
		}
	}
	if v.AuthFailRate < 0 || v.AuthFailRate > 1 || v.AuthFailRate != v.AuthFailRate {
		bad("auth-fail-rate: must be within 0..1, got %g", v.AuthFailRate)
	}
	for _, n := range []struct {
		name string
		v    int
	}{
		{"auth-cache-size", v.AuthCacheSize}, {"auth-breaker-failures", v.AuthBreakerFailures},
		{"accept-burst", v.AcceptBurst}, {"storm-alert-burst", v.StormAlertBurst},
	} {
		if n.v < 1 {
			bad("%s: must be at least 1, got %d", n.name, n.v)
		}
	}
	if v.AcceptRate != -1 && !(v.AcceptRate > 0) {
		bad("accept-rate: must be positive or -1 (no admission control), got %g", v.AcceptRate)
	}
	if !(v.StormAlertRate > 0) {
		bad("storm-alert-rate: must be positive, got %g", v.StormAlertRate)
	}
	if v.StormAlertWindow > 0 && v.StormAlertWindow < time.Second {
		bad("storm-alert-window: must be at least 1s, got %s", v.StormAlertWindow)
	}
	if v.ShedMode != ShedHTTP && v.ShedMode != ShedClose {
		bad("shed-mode: want %q or %q, got %q", ShedHTTP, ShedClose, v.ShedMode)
	}
}
