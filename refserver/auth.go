package refserver

import (
	"context"
	"errors"
	"time"

	"github.com/squall-dev/squall/refserver/protocol"
)

// AuthBackend checks a client token and returns the user id it names. It stands for the real auth
// service: implementations may be slow or fail. An error wrapping ErrUnauthorized means the token is
// bad (close 4001); any other error means the backend failed. Implementations must be safe for
// concurrent use and honour ctx.
type AuthBackend interface {
	Authenticate(ctx context.Context, token string) (userID string, err error)
}

// ErrUnauthorized is wrapped by AuthBackend errors that reject the token itself.
var ErrUnauthorized = errors.New("unauthorized")

// JWTBackend is the built-in AuthBackend: it verifies an HS256 JWT (sub = user id, exp required)
// locally, with no latency and no failures.
type JWTBackend struct {
	secret      []byte
	now         func() time.Time
	maxLifetime time.Duration
}

var _ AuthBackend = (*JWTBackend)(nil)

// NewJWTBackend returns a JWTBackend for secret. now may be nil (time.Now).
func NewJWTBackend(secret []byte, now func() time.Time) *JWTBackend {
	if now == nil {
		now = time.Now
	}
	return &JWTBackend{secret: secret, now: now}
}

// WithMaxLifetime makes b refuse tokens whose exp lies more than d ahead (0: no bound) and returns b.
func (b *JWTBackend) WithMaxLifetime(d time.Duration) *JWTBackend {
	b.maxLifetime = d
	return b
}

// Authenticate verifies token and returns its subject.
func (b *JWTBackend) Authenticate(ctx context.Context, token string) (string, error) {
	user, _, err := b.AuthenticateExpiry(ctx, token)
	return user, err
}

// AuthenticateExpiry is Authenticate that also returns when the token expires (tokenExpirer).
func (b *JWTBackend) AuthenticateExpiry(ctx context.Context, token string) (string, time.Time, error) {
	if err := ctx.Err(); err != nil {
		return "", time.Time{}, err
	}
	user, exp, err := protocol.VerifyTokenExpiry(b.secret, token, b.now(), b.maxLifetime)
	if err != nil {
		return "", time.Time{}, errors.Join(ErrUnauthorized, err)
	}
	return user, exp, nil
}

// tokenExpirer is an AuthBackend that also says when an accepted token expires, so that the auth
// cache need not parse the token a second time for it.
type tokenExpirer interface {
	AuthenticateExpiry(ctx context.Context, token string) (userID string, exp time.Time, err error)
}

var _ tokenExpirer = (*JWTBackend)(nil)
