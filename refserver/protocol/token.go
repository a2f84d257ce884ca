package protocol

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// DevSecret is the HS256 secret of a gateway started with --dev (loopback only).
const DevSecret = "squall-dev"

// Claims are the JWT claims the gateway reads: sub is the user id, exp the expiry. Tokens are HS256.
type Claims = jwt.RegisteredClaims

// ErrTokenInvalid is wrapped by every VerifyToken failure.
var ErrTokenInvalid = errors.New("invalid token")

// SignToken mints an HS256 JWT for userID that expires at exp.
func SignToken(secret []byte, userID string, exp time.Time) (string, error) {
	if userID == "" {
		return "", errors.New("protocol: SignToken: empty user id")
	}
	claims := jwt.RegisteredClaims{Subject: userID, ExpiresAt: jwt.NewNumericDate(exp)}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
}

// VerifyToken checks an HS256 JWT's signature and expiry (against now) and returns its subject.
// A token without sub or exp is invalid.
func VerifyToken(secret []byte, token string, now time.Time) (string, error) {
	if token == "" {
		return "", fmt.Errorf("%w: missing", ErrTokenInvalid)
	}
	var claims jwt.RegisteredClaims
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	_, err := parser.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return secret, nil })
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrTokenInvalid, err)
	}
	if claims.Subject == "" {
		return "", fmt.Errorf("%w: no sub claim", ErrTokenInvalid)
	}
	return claims.Subject, nil
}
