package loadgen

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/squall-dev/squall/internal/gwtest"
	"github.com/squall-dev/squall/refserver"
	"github.com/squall-dev/squall/refserver/protocol"
)

func writeKey(t *testing.T, typ string, der []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAuthSources mints and reads tokens from every source and checks what a gateway would verify.
func TestAuthSources(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalECPrivateKey(ecKey)
	rsaFile := writeKey(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey))
	ecFile := writeKey(t, "EC PRIVATE KEY", ecDER)
	emptyFile := filepath.Join(t.TempDir(), "empty.txt")
	if err := os.WriteFile(emptyFile, []byte("# nothing\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tokFile := filepath.Join(t.TempDir(), "tokens.txt")
	if err := os.WriteFile(tokFile, []byte("# tokens\ntok-0\n\ntok-1\ntok-2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	claims := map[string]string{"aud": "chat", "tenant": "t-{{.User}}", "level": "3"}
	tests := []struct {
		name   string
		spec   AuthSpec
		verify any // the key that verifies it (nil: not a JWT)
		want   string
	}{
		{"hs256 default", AuthSpec{}, []byte(protocol.DevSecret), ""},
		{"hs256 secret and claims", AuthSpec{Secret: "s3", Claims: claims}, []byte("s3"), ""},
		{"rs256", AuthSpec{Alg: "RS256", KeyFile: rsaFile, Claims: claims}, &rsaKey.PublicKey, ""},
		{"es256", AuthSpec{Alg: "ES256", KeyFile: ecFile}, &ecKey.PublicKey, ""},
		{"token file", AuthSpec{Source: AuthTokenFile, TokenFile: tokFile}, nil, "tok-2"},
		{"none", AuthSpec{Source: AuthNone}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.spec.Validate(); err != nil {
				t.Fatal(err)
			}
			src, err := newTokenSource(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			// Client 5 with two tabs per user is user 2: line 2 of the token file.
			tok, err := src.token(templateData{Client: 5, User: "users-2"}, 2)
			if err != nil {
				t.Fatal(err)
			}
			if tt.verify == nil {
				if tok != tt.want {
					t.Fatalf("token %q, want %q", tok, tt.want)
				}
				return
			}
			var got jwt.MapClaims
			if _, err := jwt.ParseWithClaims(tok, &got, func(*jwt.Token) (any, error) { return tt.verify, nil }); err != nil {
				t.Fatalf("token does not verify: %v", err)
			}
			if got["sub"] != "users-2" || got["exp"] == nil {
				t.Errorf("claims %v lack sub users-2 or exp", got)
			}
			if tt.spec.Claims != nil && (got["aud"] != "chat" || got["tenant"] != "t-users-2" || got["level"] != float64(3)) {
				t.Errorf("claims %v: want aud chat, tenant t-users-2, level 3 (a number)", got)
			}
		})
	}
	bad := []struct {
		name string
		spec AuthSpec
		want string
	}{
		{"rs256 without key", AuthSpec{Alg: "RS256"}, "key_file (a PEM private key) is required"},
		{"rs256 with an EC key", AuthSpec{Alg: "RS256", KeyFile: ecFile}, "not an RSA private key"},
		{"es256 with an RSA key", AuthSpec{Alg: "ES256", KeyFile: rsaFile}, "not an EC private key"},
		{"hs256 with a key file", AuthSpec{KeyFile: rsaFile}, "signs with secret"},
		{"unknown alg", AuthSpec{Alg: "none"}, `auth alg "none"`},
		{"token file missing", AuthSpec{Source: AuthTokenFile}, "no token_file"},
		{"token file empty", AuthSpec{Source: AuthTokenFile, TokenFile: emptyFile}, "no token in it"},
		{"unknown source", AuthSpec{Source: "oauth"}, `auth source "oauth"`},
		{"unknown place", AuthSpec{Place: "cookie"}, `auth place "cookie"`},
		{"bad claim template", AuthSpec{Claims: map[string]string{"x": "{{.Nope"}}, "claim x template"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.spec.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
		})
	}
}

// TestTokenPlacement checks where a token goes for each placement.
func TestTokenPlacement(t *testing.T) {
	tests := []struct {
		place, name   string
		wantURL       string
		header, value string
	}{
		{PlaceQuery, "", "ws://h:1/ws?token=T&x=1", "", ""},
		{PlaceQuery, "access_token", "ws://h:1/ws?access_token=T&x=1", "", ""},
		{PlaceHeader, "", "ws://h:1/ws?x=1", "Authorization", "Bearer T"},
		{PlaceHeader, "X-Token", "ws://h:1/ws?x=1", "X-Token", "T"},
		{PlaceFrame, "", "ws://h:1/ws?x=1", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.place+"/"+tt.name, func(t *testing.T) {
			u, hdr, err := placeToken(tt.place, tt.name, "ws://h:1/ws?x=1", http.Header{"Cookie": {"c=1"}}, "T")
			if err != nil {
				t.Fatal(err)
			}
			if u != tt.wantURL {
				t.Errorf("URL %s, want %s", u, tt.wantURL)
			}
			if tt.header != "" && hdr.Get(tt.header) != tt.value {
				t.Errorf("header %s = %q, want %q", tt.header, hdr.Get(tt.header), tt.value)
			}
			if hdr.Get("Cookie") != "c=1" {
				t.Error("the other headers were lost")
			}
		})
	}
}

// TestSquallHelloToken connects to the reference gateway with the token in the first frame
// (hello) instead of the URL, and with templated headers, Origin and a subprotocol.
func TestSquallHelloToken(t *testing.T) {
	gw := gwtest.Start(t, refserver.Config{AllowedOrigins: []string{"https://app.example.com"}})
	tgt := Target{Endpoints: []Endpoint{{URL: gw.URL()}}, Auth: AuthSpec{Place: PlaceFrame},
		Conn: ConnSpec{Origin: "https://app.example.com", Headers: map[string]string{"Cookie": "user={{.User}}"}, Subprotocols: []string{"squall.v1"}}}
	if err := Probe(context.Background(), tgt, tgt.Endpoints[0]); err != nil {
		t.Fatalf("hello-token probe: %v", err)
	}
	tgt.Auth = AuthSpec{Place: PlaceFrame, Secret: "wrong"}
	if err := Probe(context.Background(), tgt, tgt.Endpoints[0]); err == nil || !strings.Contains(err.Error(), "target.auth") {
		t.Fatalf("a wrong secret: %v, want an error naming target.auth", err)
	}
	tgt.Auth = AuthSpec{}
	tgt.Conn.Origin = "https://evil.example.com"
	if err := Probe(context.Background(), tgt, tgt.Endpoints[0]); err == nil || !strings.Contains(err.Error(), "target.origin") {
		t.Fatalf("a refused origin: %v, want an error naming target.origin", err)
	}
}

// TestHS256MatchesLibrary: the hand-minted HS256 token of a user is byte for byte what the jwt
// library signs for the same claims; users whose JSON needs escaping take the library's path.
func TestHS256MatchesLibrary(t *testing.T) {
	src, err := newJWTSource(AuthSpec{Secret: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour).Unix()
	for _, user := range []string{"u", "user-0042", "a.b_c~d", strings.Repeat("x", 100)} {
		want, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": user, "exp": exp}).SignedString([]byte("s3cret"))
		if err != nil {
			t.Fatal(err)
		}
		for range 2 { // the second from a pooled HMAC
			if got := src.hs256(user, exp); got != want {
				t.Fatalf("user %q:\n got %s\nwant %s", user, got, want)
			}
		}
	}
	for _, user := range []string{`q"uote`, `back\slash`, "<tag>", "a&b", "é", "tab\there"} {
		if plainClaim(user) {
			t.Errorf("%q: taken as plain, want the library's path", user)
		}
	}
}
