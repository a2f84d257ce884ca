package protocol

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

// The fast path of VerifyTokenExpiry. It takes only tokens whose every part it reads exactly as the
// library's Parser (configured as in parseTokenLibrary) and RegisteredClaims would, and returns
// errTokenNotCanonical for any other token, which then goes through the library:
//
//   - the header segment is one of the canonical encodings below; the library reads only alg from a
//     header, and all of them say HS256;
//   - the signature segment is 43 base64url characters that decode (strictly) to the HMAC-SHA256 of
//     header.payload under the secret;
//   - the payload segment is unpadded base64url without line breaks that decodes strictly (what
//     decodes strictly decodes to the same bytes without strictness) to a JSON object without
//     whitespace, escapes or nesting whose members are each named at most once: sub, iss, aud and
//     jti as plain strings (valid UTF-8, no control characters); exp, nbf and iat as integers of at
//     most 12 digits (exact as float64s: NumericDate reads them as the whole second they name);
//     other lowercase ASCII names with plain strings, integers, true or false, which
//     RegisteredClaims ignores (no such name matches one of its fields, even case-folded).
//
// The claims are then checked by the library's rules (validator.go) with no leeway: exp is required
// and now must be before it; now must not be before nbf; iat is not checked (the parser is not given
// WithIssuedAt).

// Canonical HS256 header segments: base64url of {"alg":"HS256","typ":"JWT"} (what
// jwt.NewWithClaims(jwt.SigningMethodHS256, …).SignedString, hence SignToken, writes), of
// {"typ":"JWT","alg":"HS256"} and of {"alg":"HS256"}.
const (
	hs256Header         = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
	hs256HeaderTypFirst = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9"
	hs256HeaderAlgOnly  = "eyJhbGciOiJIUzI1NiJ9"
)

const (
	// maxFastTokenBytes bounds the tokens the fast path takes, and so its pooled buffers.
	maxFastTokenBytes = 2048
	// hs256SigChars is the length of an unpadded base64url HMAC-SHA256.
	hs256SigChars = (sha256.Size*8 + 5) / 6
	// maxClaimDigits bounds exp, nbf and iat on the fast path: below 2^53, so exact as a float64.
	maxClaimDigits = 12
)

// errTokenNotCanonical is verifyTokenFast's answer for a token it leaves to the library.
var errTokenNotCanonical = errors.New("protocol: token not canonical")

// strictRawURL decodes what base64.RawURLEncoding, the library's decoding, decodes to the same bytes.
var strictRawURL = base64.RawURLEncoding.Strict()

// tokenScratch is the per-verification state of the fast path, pooled: an HMAC keyed with key (the
// secret it was last used with) and the buffers the token is decoded into.
type tokenScratch struct {
	key     []byte
	mac     hash.Hash
	text    []byte // the token
	payload []byte // the decoded payload
	sum     [sha256.Size]byte
	sig     [sha256.Size]byte
}

var tokenScratchPool = sync.Pool{New: func() any {
	return &tokenScratch{
		text:    make([]byte, 0, maxFastTokenBytes),
		payload: make([]byte, base64.RawURLEncoding.DecodedLen(maxFastTokenBytes)),
	}
}}

// getTokenScratch returns a pooled tokenScratch whose mac is reset and keyed with secret.
func getTokenScratch(secret []byte) *tokenScratch {
	s := tokenScratchPool.Get().(*tokenScratch)
	if s.mac == nil || !bytes.Equal(s.key, secret) {
		s.key = bytes.Clone(secret)
		s.mac = hmac.New(sha256.New, s.key)
	}
	s.mac.Reset() // the first Reset also saves the keyed state, so later ones are cheap
	return s
}

// verifyTokenFast is parseTokenLibrary for canonical HS256 tokens (see above); for any other token it
// returns errTokenNotCanonical.
func verifyTokenFast(secret []byte, token string, now time.Time) (string, time.Time, error) {
	if len(token) > maxFastTokenBytes {
		return "", time.Time{}, errTokenNotCanonical
	}
	dot1 := strings.IndexByte(token, '.')
	if dot1 < 0 {
		return "", time.Time{}, errTokenNotCanonical
	}
	switch token[:dot1] {
	case hs256Header, hs256HeaderTypFirst, hs256HeaderAlgOnly:
	default:
		return "", time.Time{}, errTokenNotCanonical
	}
	n := strings.IndexByte(token[dot1+1:], '.')
	if n < 0 {
		return "", time.Time{}, errTokenNotCanonical
	}
	dot2 := dot1 + 1 + n
	if len(token)-dot2-1 != hs256SigChars || strings.IndexByte(token[dot2+1:], '.') >= 0 {
		return "", time.Time{}, errTokenNotCanonical
	}

	s := getTokenScratch(secret)
	defer tokenScratchPool.Put(s)
	s.text = append(s.text[:0], token...)
	if n, err := strictRawURL.Decode(s.sig[:], s.text[dot2+1:]); err != nil || n != len(s.sig) {
		return "", time.Time{}, errTokenNotCanonical
	}
	s.mac.Write(s.text[:dot2])
	if !hmac.Equal(s.mac.Sum(s.sum[:0]), s.sig[:]) {
		return "", time.Time{}, errTokenNotCanonical
	}
	// Decoding skips CR and LF, as the library's does; a segment holding them decodes short.
	seg := s.text[dot1+1 : dot2]
	n, err := strictRawURL.Decode(s.payload, seg)
	if err != nil || n != strictRawURL.DecodedLen(len(seg)) {
		return "", time.Time{}, errTokenNotCanonical
	}
	c, ok := parseTokenClaims(s.payload[:n])
	if !ok {
		return "", time.Time{}, errTokenNotCanonical
	}

	// The library's Validator.Validate with leeway 0: exp (required), then nbf, their failures
	// joined with ", ".
	var failed string
	exp := time.Unix(c.exp, 0)
	if !c.hasExp {
		failed = jwt.ErrTokenRequiredClaimMissing.Error() + ": exp claim is required"
	} else if !now.Before(exp) {
		failed = jwt.ErrTokenExpired.Error()
	}
	if c.hasNbf && now.Before(time.Unix(c.nbf, 0)) {
		if failed != "" {
			failed += ", "
		}
		failed += jwt.ErrTokenNotValidYet.Error()
	}
	if failed != "" {
		return "", time.Time{}, fmt.Errorf("%w: %s: %s", ErrTokenInvalid, jwt.ErrTokenInvalidClaims, failed)
	}
	return string(c.sub), exp, nil
}

// tokenClaims are the claims parseTokenClaims reads; sub points into the payload.
type tokenClaims struct {
	sub            []byte
	exp, nbf       int64
	hasExp, hasNbf bool
}

// Bits of the registered claims parseTokenClaims has seen.
const (
	claimSub = 1 << iota
	claimIss
	claimAud
	claimJti
	claimExp
	claimNbf
	claimIat
)

// parseTokenClaims parses a canonical payload (see above) and reports whether b is one.
func parseTokenClaims(b []byte) (c tokenClaims, ok bool) {
	if len(b) < 2 || b[0] != '{' {
		return c, false
	}
	if b[1] == '}' {
		return c, len(b) == 2
	}
	var seen int
	for i := 1; ; {
		key, j, ok := plainJSONString(b, i)
		if !ok || j >= len(b) || b[j] != ':' {
			return c, false
		}
		i = j + 1
		var bit int
		switch string(key) {
		case "sub":
			bit = claimSub
		case "iss":
			bit = claimIss
		case "aud":
			bit = claimAud
		case "jti":
			bit = claimJti
		case "exp":
			bit = claimExp
		case "nbf":
			bit = claimNbf
		case "iat":
			bit = claimIat
		}
		switch {
		case bit == 0:
			if !plainClaimName(key) {
				return c, false
			}
			if i, ok = skipSimpleJSONValue(b, i); !ok {
				return c, false
			}
		case seen&bit != 0:
			return c, false
		case bit&(claimExp|claimNbf|claimIat) != 0:
			var v int64
			if v, i, ok = claimInteger(b, i); !ok {
				return c, false
			}
			switch bit {
			case claimExp:
				c.exp, c.hasExp = v, true
			case claimNbf:
				c.nbf, c.hasNbf = v, true
			}
		default:
			var s []byte
			if s, i, ok = plainJSONString(b, i); !ok {
				return c, false
			}
			if bit == claimSub {
				c.sub = s
			}
		}
		seen |= bit
		if i >= len(b) {
			return c, false
		}
		switch b[i] {
		case ',':
			i++
		case '}':
			return c, i+1 == len(b)
		default:
			return c, false
		}
	}
}

// plainJSONString reads a JSON string at b[i] that encoding/json decodes to its bytes as they are:
// valid UTF-8 without escapes or control characters. It returns the bytes and the index after it.
func plainJSONString(b []byte, i int) ([]byte, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			s := b[i+1 : j]
			return s, j + 1, utf8.Valid(s)
		case c < 0x20 || c == '\\':
			return nil, 0, false
		}
	}
	return nil, 0, false
}

// claimInteger reads at b[i] a JSON integer of 1 to maxClaimDigits digits, without sign or leading zero.
func claimInteger(b []byte, i int) (int64, int, bool) {
	var v int64
	j := i
	for ; j < len(b) && '0' <= b[j] && b[j] <= '9'; j++ {
		v = v*10 + int64(b[j]-'0')
		if j-i == maxClaimDigits {
			return 0, 0, false
		}
	}
	if j == i || b[i] == '0' && j-i > 1 {
		return 0, 0, false
	}
	return v, j, true
}

// plainClaimName reports whether a claim name is lowercase ASCII letters, digits and underscores: such
// a name other than a registered claim's matches none of RegisteredClaims' fields, even case-folded.
func plainClaimName(name []byte) bool {
	if len(name) == 0 || len(name) > 64 {
		return false
	}
	for _, c := range name {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// skipSimpleJSONValue skips at b[i] a plain string, an integer without sign or leading zero, true or
// false, and returns the index after it.
func skipSimpleJSONValue(b []byte, i int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch c := b[i]; {
	case c == '"':
		_, j, ok := plainJSONString(b, i)
		return j, ok
	case '0' <= c && c <= '9':
		j := i
		for j < len(b) && '0' <= b[j] && b[j] <= '9' {
			j++
		}
		return j, c != '0' || j-i == 1
	case bytes.HasPrefix(b[i:], []byte("true")):
		return i + 4, true
	case bytes.HasPrefix(b[i:], []byte("false")):
		return i + 5, true
	}
	return 0, false
}
