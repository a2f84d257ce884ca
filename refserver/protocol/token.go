package protocol

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

// DevSecret is the HS256 secret of a gateway started with --dev (loopback only).
const DevSecret = "squall-dev"

// Claims are the JWT claims the gateway reads: sub is the user id, exp the expiry. Tokens are HS256.
type Claims = jwt.RegisteredClaims

// MaxUserIDBytes bounds a user id (a token's sub): it is echoed to every member of the user's rooms.
const MaxUserIDBytes = 128

// ErrUserID is wrapped by CheckUserID's errors.
var ErrUserID = errors.New("bad user id")

// CheckUserID reports whether id may be a user id: non-empty, at most MaxUserIDBytes bytes of valid
// UTF-8 without control characters.
func CheckUserID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: empty", ErrUserID)
	case len(id) > MaxUserIDBytes:
		return fmt.Errorf("%w: %d bytes, more than %d", ErrUserID, len(id), MaxUserIDBytes)
	case !utf8.ValidString(id):
		return fmt.Errorf("%w: not valid UTF-8", ErrUserID)
	case strings.ContainsFunc(id, unicode.IsControl):
		return fmt.Errorf("%w: holds a control character", ErrUserID)
	}
	return nil
}

// ErrTokenInvalid is wrapped by every VerifyToken failure.
var ErrTokenInvalid = errors.New("invalid token")

// SignToken mints an HS256 JWT for userID that expires at exp.
func SignToken(secret []byte, userID string, exp time.Time) (string, error) {
	if err := CheckUserID(userID); err != nil {
		return "", fmt.Errorf("protocol: SignToken: %w", err)
	}
	claims := jwt.RegisteredClaims{Subject: userID, ExpiresAt: jwt.NewNumericDate(exp)}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
}

// VerifyToken checks an HS256 JWT's signature and expiry (against now) and returns its subject.
// A token without exp, or whose sub is not a user id (CheckUserID), is invalid.
func VerifyToken(secret []byte, token string, now time.Time) (string, error) {
	return VerifyTokenLifetime(secret, token, now, 0)
}

// VerifyTokenLifetime is VerifyToken that also refuses a token whose exp lies more than
// maxLifetime after now (0: no bound), so that a leaked token cannot be valid for years.
func VerifyTokenLifetime(secret []byte, token string, now time.Time, maxLifetime time.Duration) (string, error) {
	user, _, err := VerifyTokenExpiry(secret, token, now, maxLifetime)
	return user, err
}

// VerifyTokenExpiry is VerifyTokenLifetime that also returns the token's exp. A canonical HS256 token
// (the header SignToken writes, simple claims) is checked without the JWT library's parser, by the same
// rules; any other token goes through the library.
func VerifyTokenExpiry(secret []byte, token string, now time.Time, maxLifetime time.Duration) (string, time.Time, error) {
	return verifyTokenExpiry(secret, token, now, maxLifetime, true)
}

// verifyTokenLibrary is VerifyTokenExpiry without the fast path: every token goes through the library.
func verifyTokenLibrary(secret []byte, token string, now time.Time, maxLifetime time.Duration) (string, time.Time, error) {
	return verifyTokenExpiry(secret, token, now, maxLifetime, false)
}

func verifyTokenExpiry(secret []byte, token string, now time.Time, maxLifetime time.Duration, fast bool) (string, time.Time, error) {
	if token == "" {
		return "", time.Time{}, fmt.Errorf("%w: missing", ErrTokenInvalid)
	}
	user, exp, err := "", time.Time{}, errTokenNotCanonical
	if fast {
		user, exp, err = verifyTokenFast(secret, token, now)
	}
	if err == errTokenNotCanonical {
		user, exp, err = parseTokenLibrary(secret, token, now)
	}
	if err != nil {
		return "", time.Time{}, err
	}
	return checkTokenClaims(user, exp, now, maxLifetime)
}

// parseTokenLibrary checks token's signature, exp and nbf with the JWT library and returns its sub and exp.
func parseTokenLibrary(secret []byte, token string, now time.Time) (string, time.Time, error) {
	var claims jwt.RegisteredClaims
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	_, err := parser.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return secret, nil })
	if err != nil {
		return "", time.Time{}, fmt.Errorf("%w: %v", ErrTokenInvalid, err)
	}
	return claims.Subject, claims.ExpiresAt.Time, nil
}

// checkTokenClaims applies the gateway's own rules to a verified token's sub and exp: sub must be a
// user id, and exp no more than maxLifetime (0: no bound) after now.
func checkTokenClaims(user string, exp, now time.Time, maxLifetime time.Duration) (string, time.Time, error) {
	if user == "" {
		return "", time.Time{}, fmt.Errorf("%w: no sub claim", ErrTokenInvalid)
	}
	if err := CheckUserID(user); err != nil {
		return "", time.Time{}, fmt.Errorf("%w: sub: %v", ErrTokenInvalid, err)
	}
	if maxLifetime > 0 && exp.Sub(now) > maxLifetime {
		return "", time.Time{}, fmt.Errorf("%w: exp is %s away, more than the %s allowed", ErrTokenInvalid,
			exp.Sub(now).Round(time.Second), maxLifetime)
	}
	return user, exp, nil
}
