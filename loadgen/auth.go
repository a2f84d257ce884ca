package loadgen

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/squall-dev/squall/refserver/protocol"
)

// Auth sources (AuthSpec.Source).
const (
	AuthJWT       = "jwt"        // minted JWTs, one per connection (the default)
	AuthTokenFile = "token_file" // tokens read from a file, one per simulated user
	AuthNone      = "none"       // no token
)

// Token placements (AuthSpec.Place; empty means the protocol's own).
const (
	PlaceQuery  = "query"  // a query parameter of the dialled URL (AuthSpec.Name, default "token")
	PlaceHeader = "header" // a header of the upgrade request (AuthSpec.Name, default Authorization: Bearer)
	PlaceFrame  = "frame"  // the protocol's first frame (squall's hello, centrifugo's connect, generic's {{.Token}})
)

// AuthSpec says where a client's token comes from and where it goes. The zero value mints HS256
// JWTs signed with protocol.DevSecret (sub = the user id, exp a day ahead) and places them where
// the protocol does (squall: the token query parameter).
type AuthSpec struct {
	// Source is jwt (default), token_file or none.
	Source string `json:"source,omitempty" yaml:"source"`
	// Secret is the HS256 key of minted JWTs (default protocol.DevSecret, the reference
	// gateway's dev secret).
	Secret string `json:"secret,omitempty" yaml:"secret"`
	// Alg is the minted JWTs' algorithm: HS256 (default), RS256 or ES256 (these two sign with
	// the PEM private key in KeyFile).
	Alg string `json:"alg,omitempty" yaml:"alg"`
	// KeyFile is the PEM private key (PKCS#1, PKCS#8 or SEC 1) of RS256 and ES256.
	KeyFile string `json:"key_file,omitempty" yaml:"key_file"`
	// Claims are added to every minted JWT (sub and exp are set unless given here). Values are
	// templates seeing {{.User}} and {{.Client}}; a value that reads as an integer is a number.
	Claims map[string]string `json:"claims,omitempty" yaml:"claims"`
	// TTL is the minted JWTs' lifetime (default 24h). Not time-scaled.
	TTL time.Duration `json:"ttl,omitempty" yaml:"ttl" scale:"-"`
	// TokenFile holds one token per line (blank lines and lines starting with # skipped); the
	// user of client n (n / tabs_per_user) takes line n mod the number of tokens.
	TokenFile string `json:"token_file,omitempty" yaml:"token_file"`
	// Place is where the token goes: query, header or frame (default: the protocol's own place).
	Place string `json:"place,omitempty" yaml:"place"`
	// Name is the query parameter (default "token") or header (default "Authorization", whose
	// value is then "Bearer TOKEN") that carries the token.
	Name string `json:"name,omitempty" yaml:"name"`
}

// Validate reports what makes the spec unusable, reading its files.
func (a AuthSpec) Validate() error {
	_, err := newTokenSource(a)
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	switch a.Place {
	case "", PlaceQuery, PlaceHeader, PlaceFrame:
	default:
		errs = append(errs, fmt.Errorf("auth place %q: want query, header or frame", a.Place))
	}
	return errors.Join(errs...)
}

// tokenSource gives each client its token.
type tokenSource interface {
	token(d templateData, tabs int) (string, error)
}

func newTokenSource(a AuthSpec) (tokenSource, error) {
	switch a.Source {
	case "", AuthJWT:
		return newJWTSource(a)
	case AuthTokenFile:
		if a.TokenFile == "" {
			return nil, errors.New("auth source token_file: no token_file given")
		}
		return readTokenFile(a.TokenFile)
	case AuthNone:
		return noToken{}, nil
	}
	return nil, fmt.Errorf("auth source %q: want jwt, token_file or none", a.Source)
}

type noToken struct{}

func (noToken) token(templateData, int) (string, error) { return "", nil }

// fileTokens are the tokens of a token file.
type fileTokens []string

func readTokenFile(path string) (fileTokens, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth token_file: %w", err)
	}
	var out fileTokens
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("auth token_file %s: %w", path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("auth token_file %s: no token in it", path)
	}
	return out, nil
}

func (f fileTokens) token(d templateData, tabs int) (string, error) {
	return f[(d.Client/max(tabs, 1))%len(f)], nil
}

// jwtSource mints JWTs.
type jwtSource struct {
	method jwt.SigningMethod
	key    any
	ttl    time.Duration
	claims map[string]*template.Template
	macs   sync.Pool // of hash.Hash: HMAC-SHA256 keyed with key (HS256)
}

func newJWTSource(a AuthSpec) (*jwtSource, error) {
	s := &jwtSource{ttl: a.TTL}
	if s.ttl <= 0 {
		s.ttl = 24 * time.Hour
	}
	switch a.Alg {
	case "", "HS256":
		if a.KeyFile != "" {
			return nil, errors.New("auth alg HS256 signs with secret, not key_file (set alg RS256 or ES256)")
		}
		s.method = jwt.SigningMethodHS256
		s.key = []byte(cmpOr(a.Secret, protocol.DevSecret))
	case "RS256", "ES256":
		if a.KeyFile == "" {
			return nil, fmt.Errorf("auth alg %s: key_file (a PEM private key) is required", a.Alg)
		}
		pem, err := os.ReadFile(a.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("auth key_file: %w", err)
		}
		if a.Alg == "RS256" {
			k, err := jwt.ParseRSAPrivateKeyFromPEM(pem)
			if err != nil {
				return nil, fmt.Errorf("auth key_file %s: not an RSA private key: %w", a.KeyFile, err)
			}
			s.method, s.key = jwt.SigningMethodRS256, k
		} else {
			k, err := jwt.ParseECPrivateKeyFromPEM(pem)
			if err != nil {
				return nil, fmt.Errorf("auth key_file %s: not an EC private key: %w", a.KeyFile, err)
			}
			s.method, s.key = jwt.SigningMethodES256, k
		}
	default:
		return nil, fmt.Errorf("auth alg %q: want HS256, RS256 or ES256", a.Alg)
	}
	names := make([]string, 0, len(a.Claims))
	for n := range a.Claims {
		names = append(names, n)
	}
	slices.Sort(names)
	s.claims = map[string]*template.Template{}
	for _, n := range names {
		t, err := template.New(n).Option("missingkey=error").Parse(a.Claims[n])
		if err != nil {
			return nil, fmt.Errorf("auth claim %s template: %w", n, err)
		}
		s.claims[n] = t
	}
	return s, nil
}

func (s *jwtSource) token(d templateData, _ int) (string, error) {
	exp := time.Now().Add(s.ttl).Unix()
	if len(s.claims) == 0 && s.method == jwt.SigningMethodHS256 && plainClaim(d.User) {
		return s.hs256(d.User, exp), nil
	}
	claims := jwt.MapClaims{"sub": d.User, "exp": exp}
	var b strings.Builder
	for n, t := range s.claims {
		b.Reset()
		if err := t.Execute(&b, d); err != nil {
			return "", fmt.Errorf("claim %s: %w", n, err)
		}
		claims[n] = claimValue(b.String())
	}
	return jwt.NewWithClaims(s.method, claims).SignedString(s.key)
}

// hs256Header is the encoded JOSE header of an HS256 token, as the jwt library writes it.
var hs256Header = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))

// hs256 mints the token of a user with only sub and exp, byte for byte what the jwt library signs
// for those claims (its header, the claims in key order), without its maps, reflection and
// per-token HMAC: a ramp mints one per connection. The HMACs are pooled per source.
func (s *jwtSource) hs256(user string, exp int64) string {
	b := make([]byte, 0, 192)
	b = append(b, hs256Header...)
	b = append(b, '.')
	var payload [128]byte
	p := append(payload[:0], `{"exp":`...)
	p = strconv.AppendInt(p, exp, 10)
	p = append(p, `,"sub":"`...)
	p = append(p, user...)
	p = append(p, `"}`...)
	b = base64.RawURLEncoding.AppendEncode(b, p)
	h, _ := s.macs.Get().(hash.Hash)
	if h == nil {
		h = hmac.New(sha256.New, s.key.([]byte))
	}
	h.Reset()
	h.Write(b)
	var sum [sha256.Size]byte
	b = append(b, '.')
	b = base64.RawURLEncoding.AppendEncode(b, h.Sum(sum[:0]))
	s.macs.Put(h)
	return string(b)
}

// plainClaim reports whether v is written in JSON as it is, between quotes (the jwt library's
// encoding/json escapes anything else: quotes, backslashes, control characters, <, >, &, and
// non-ASCII line separators).
func plainClaim(v string) bool {
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c < 0x20, c >= 0x7f, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}

// claimValue is v as a JSON number when it reads as an integer, else the string.
func claimValue(v string) any {
	var n int64
	if _, err := fmt.Sscan(v, &n); err == nil && fmt.Sprint(n) == v {
		return n
	}
	return v
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// placeToken puts token where place says: into the URL's query or the headers (returned, perhaps
// allocated). A frame placement leaves both as they are (the protocol's first frame carries it).
func placeToken(place, name, raw string, hdr http.Header, token string) (string, http.Header, error) {
	if token == "" {
		return raw, hdr, nil
	}
	switch place {
	case PlaceQuery:
		u, err := url.Parse(raw)
		if err != nil {
			return "", hdr, err
		}
		q := u.Query()
		q.Set(cmpOr(name, protocol.TokenQueryParam), token)
		u.RawQuery = q.Encode()
		return u.String(), hdr, nil
	case PlaceHeader:
		if hdr == nil {
			hdr = http.Header{}
		}
		if name == "" {
			hdr.Set("Authorization", "Bearer "+token)
		} else {
			hdr.Set(name, token)
		}
	}
	return raw, hdr, nil
}
