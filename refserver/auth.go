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
	if err := ctx.Err(); err != nil {
		return "", err
	}
	user, err := protocol.VerifyTokenLifetime(b.secret, token, b.now(), b.maxLifetime)
	if err != nil {
		return "", errors.Join(ErrUnauthorized, err)
	}
	return user, nil
}
