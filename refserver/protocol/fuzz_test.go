package protocol

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// fuzzNow is the clock of the token fuzz target: its seed tokens expire after it.
var fuzzNow = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// FuzzVerifyToken checks that VerifyToken never panics and accepts only what it should: a token is
// accepted only with a subject, and a token SignToken mints for a user is accepted with that user.
func FuzzVerifyToken(f *testing.F) {
	secret := []byte("fuzz-secret")
	good, err := SignToken(secret, "alice", fuzzNow.Add(time.Hour))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []struct{ token, user string }{
		{good, "alice"}, {"", "bob"}, {"a.b.c", "u"}, {good[:len(good)-3], "x"},
		{"eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.", "a"}, {strings.Repeat("a.", 100), "long"},
		{"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIiwiZXhwIjoxZTMwMH0.x", "exp-huge"},
	} {
		f.Add(s.token, s.user)
	}
	f.Fuzz(func(t *testing.T, token, user string) {
		sub, err := VerifyToken(secret, token, fuzzNow)
		if err == nil && sub == "" {
			t.Fatalf("accepted %q with an empty subject", token)
		}
		if err != nil && !errors.Is(err, ErrTokenInvalid) {
			t.Fatalf("error %v does not wrap ErrTokenInvalid", err)
		}
		tok, err := SignToken(secret, user, fuzzNow.Add(time.Minute))
		if err != nil {
			return // not a user id SignToken mints
		}
		got, err := VerifyToken(secret, tok, fuzzNow)
		if err != nil {
			t.Fatalf("a token minted for %q is refused: %v", user, err)
		}
		if got != user && utf8.ValidString(user) {
			t.Fatalf("a token minted for %q verifies as %q", user, got)
		}
		if _, err := VerifyToken([]byte("other"), tok, fuzzNow); err == nil {
			t.Fatalf("a token minted for %q verifies under another secret", user)
		}
	})
}

// FuzzParseRetryAfter checks that ParseRetryAfter never panics, finds only hints in range, and reads
// back what FormatReason writes.
func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{
		"draining retry_after_ms=3200", "retry_after_ms=1", "shed retry_after_ms=", "retry_after_ms=-5",
		"retry_after_ms=99999999999999999999", "retry_after_ms=9223372036854775", "x retry_after_ms=12abc",
		"", "overloaded", "retry_after_ms=86400000", "retry_after_ms=86400001",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, reason string) {
		d, ok := ParseRetryAfter(reason)
		if ok && (d < 0 || d > MaxRetryHint || !strings.Contains(reason, retryKey)) {
			t.Fatalf("ParseRetryAfter(%q) = %s, true", reason, d)
		}
		if !ok && d != 0 {
			t.Fatalf("ParseRetryAfter(%q) = %s, false", reason, d)
		}
		word := ReasonWord(reason)
		if strings.ContainsRune(word, ' ') {
			t.Fatalf("ReasonWord(%q) = %q holds a space", reason, word)
		}
		if ok && d > 0 {
			again, ok2 := ParseRetryAfter(FormatReason(word, d))
			if !ok2 || again != d.Truncate(time.Millisecond) {
				t.Fatalf("FormatReason(%q, %s) reads back as %s, %v", word, d, again, ok2)
			}
		}
	})
}
