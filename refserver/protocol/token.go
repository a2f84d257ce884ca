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

// VerifyTokenExpiry is VerifyTokenLifetime that also returns the token's exp.
func VerifyTokenExpiry(secret []byte, token string, now time.Time, maxLifetime time.Duration) (string, time.Time, error) {
	if token == "" {
		return "", time.Time{}, fmt.Errorf("%w: missing", ErrTokenInvalid)
	}
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
	if claims.Subject == "" {
		return "", time.Time{}, fmt.Errorf("%w: no sub claim", ErrTokenInvalid)
	}
	if err := CheckUserID(claims.Subject); err != nil {
		return "", time.Time{}, fmt.Errorf("%w: sub: %v", ErrTokenInvalid, err)
	}
	if maxLifetime > 0 && claims.ExpiresAt.Sub(now) > maxLifetime {
		return "", time.Time{}, fmt.Errorf("%w: exp is %s away, more than the %s allowed", ErrTokenInvalid,
			claims.ExpiresAt.Sub(now).Round(time.Second), maxLifetime)
	}
	return claims.Subject, claims.ExpiresAt.Time, nil
}
