package protocol

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var fastSecret = []byte("fast-secret")

// fastNow is the clock of the fast-path tests: a whole second plus 250 ms.
var fastNow = time.Unix(1_800_000_000, 250_000_000)

// rawToken builds a token from a header and payload JSON, signed by HS256 under secret.
func rawToken(secret []byte, header, payload string) string {
	enc := base64.RawURLEncoding
	text := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload))
	return text + "." + signText(secret, text)
}

// signText returns the base64url HMAC-SHA256 of text under secret.
func signText(secret []byte, text string) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(text))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// resign replaces the signature of a token that has at least two dots with a valid one.
func resign(secret []byte, token string) (string, bool) {
	h, rest, ok := strings.Cut(token, ".")
	if !ok {
		return "", false
	}
	p, _, ok := strings.Cut(rest, ".")
	if !ok {
		return "", false
	}
	return h + "." + p + "." + signText(secret, h+"."+p), true
}

// checkSameResult fails t unless VerifyTokenExpiry and verifyTokenLibrary agree on token: same user,
// same exp, both failing or neither, and the same message.
func checkSameResult(t *testing.T, secret []byte, token string, now time.Time, maxLifetime time.Duration) {
	t.Helper()
	user, exp, err := VerifyTokenExpiry(secret, token, now, maxLifetime)
	wantUser, wantExp, wantErr := verifyTokenLibrary(secret, token, now, maxLifetime)
	if user != wantUser || exp != wantExp || (err == nil) != (wantErr == nil) {
		t.Fatalf("token %q at %v (max lifetime %v):\nfast path: %q, %v, %v\nlibrary:   %q, %v, %v",
			token, now, maxLifetime, user, exp, err, wantUser, wantExp, wantErr)
	}
	if err != nil && err.Error() != wantErr.Error() {
		t.Fatalf("token %q at %v: fast path fails with %q, the library with %q", token, now, err, wantErr)
	}
	if err != nil && !errors.Is(err, ErrTokenInvalid) {
		t.Fatalf("token %q: %v does not wrap ErrTokenInvalid", token, err)
	}
}

// TestTokenHeaderCanonical checks that the header the library writes for HS256 is hs256Header.
func TestTokenHeaderCanonical(t *testing.T) {
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{Subject: "a"}).SignedString(fastSecret)
	if err != nil {
		t.Fatal(err)
	}
	if h, _, _ := strings.Cut(tok, "."); h != hs256Header {
		t.Fatalf("library's HS256 header is %q, want %q", h, hs256Header)
	}
	for _, c := range []struct{ segment, json string }{
		{hs256Header, `{"alg":"HS256","typ":"JWT"}`},
		{hs256HeaderTypFirst, `{"typ":"JWT","alg":"HS256"}`},
		{hs256HeaderAlgOnly, `{"alg":"HS256"}`},
	} {
		if got := base64.RawURLEncoding.EncodeToString([]byte(c.json)); got != c.segment {
			t.Errorf("%s encodes as %q, want %q", c.json, got, c.segment)
		}
	}
}

func TestVerifyTokenFast(t *testing.T) {
	const hdr = `{"alg":"HS256","typ":"JWT"}`
	sec := fastNow.Unix()
	num := func(v int64) string { return strconv.FormatInt(v, 10) }
	exp := func(v int64) string { return `{"sub":"alice","exp":` + num(v) + `}` }
	signed, err := SignToken(fastSecret, "alice", fastNow.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	good := rawToken(fastSecret, hdr, exp(sec+60))
	h, rest, _ := strings.Cut(good, ".")
	p, s, _ := strings.Cut(rest, ".")

	tests := []struct {
		name        string
		token       string
		now         time.Time     // zero: fastNow
		maxLifetime time.Duration // 0: none
		fast        bool          // whether verifyTokenFast takes the token
	}{
		{name: "SignToken", token: signed, fast: true},
		{name: "valid", token: good, fast: true},
		{name: "typ first", token: rawToken(fastSecret, `{"typ":"JWT","alg":"HS256"}`, exp(sec+60)), fast: true},
		{name: "alg only", token: rawToken(fastSecret, `{"alg":"HS256"}`, exp(sec+60)), fast: true},
		{name: "all registered claims", fast: true, token: rawToken(fastSecret, hdr,
			`{"iss":"me","sub":"alice","aud":"you","exp":`+num(sec+60)+`,"nbf":`+num(sec-60)+`,"iat":`+num(sec-60)+`,"jti":"x1"}`)},
		{name: "private claims", fast: true, token: rawToken(fastSecret, hdr,
			`{"sub":"alice","role":"admin","n":0,"big":123456789012345678901234567890,"ok":true,"no":false,"exp":`+num(sec+60)+`}`)},
		{name: "unicode sub", token: rawToken(fastSecret, hdr, `{"sub":"zoë 🙂","exp":`+num(sec+60)+`}`), fast: true},

		// exp
		{name: "exp == now (whole second)", token: good, now: time.Unix(sec+60, 0), fast: true},
		{name: "exp == now's second, now later in it", token: good, now: time.Unix(sec+60, 1), fast: true},
		{name: "exp 1ns after now", token: good, now: time.Unix(sec+59, 999_999_999), fast: true},
		{name: "exp = now-1s", token: rawToken(fastSecret, hdr, exp(sec-1)), fast: true},
		{name: "exp = now+1s, sub-second now", token: rawToken(fastSecret, hdr, exp(sec+1)), fast: true},
		{name: "exp = now's second", token: rawToken(fastSecret, hdr, exp(sec)), fast: true},
		{name: "exp 0", token: rawToken(fastSecret, hdr, `{"sub":"alice","exp":0}`), fast: true},
		{name: "exp missing", token: rawToken(fastSecret, hdr, `{"sub":"alice"}`), fast: true},
		{name: "empty claims", token: rawToken(fastSecret, hdr, `{}`), fast: true},
		{name: "exp 12 digits", token: rawToken(fastSecret, hdr, `{"sub":"alice","exp":999999999999}`), fast: true},
		{name: "exp 13 digits", token: rawToken(fastSecret, hdr, `{"sub":"alice","exp":9999999999999}`)},
		{name: "exp huge", token: rawToken(fastSecret, hdr, `{"sub":"alice","exp":1e300}`)},
		{name: "exp huge integer", token: rawToken(fastSecret, hdr, `{"sub":"alice","exp":99999999999999999999999}`)},
		{name: "exp float 1.5e9", token: rawToken(fastSecret, hdr, `{"sub":"alice","exp":1.5e9}`)},
		{name: "exp fractional", token: rawToken(fastSecret, hdr, `{"sub":"alice","exp":`+num(sec)+`.5}`)},
		{name: "exp fractional, now after", token: rawToken(fastSecret, hdr, `{"sub":"alice","exp":`+num(sec)+`.5}`), now: time.Unix(sec, 600_000_000)},
		{name: "exp 1700000000.5", token: rawToken(fastSecret, hdr, `{"sub":"alice","exp":1700000000.5}`), now: time.Unix(1_700_000_000, 0)},
		{name: "exp as string", token: rawToken(fastSecret, hdr, `{"sub":"alice","exp":"`+num(sec+60)+`"}`)},
		{name: "exp as word", token: rawToken(fastSecret, hdr, `{"sub":"alice","exp":"soon"}`)},
		{name: "exp negative", token: rawToken(fastSecret, hdr, `{"sub":"alice","exp":-1}`)},
		{name: "exp leading zero", token: rawToken(fastSecret, hdr, `{"sub":"alice","exp":0`+num(sec+60)+`}`)},
		{name: "exp null", token: rawToken(fastSecret, hdr, `{"sub":"alice","exp":null}`)},
		{name: "exp twice", token: rawToken(fastSecret, hdr, `{"sub":"alice","exp":`+num(sec+60)+`,"exp":1}`)},
		{name: "exp then null", token: rawToken(fastSecret, hdr, `{"sub":"alice","exp":`+num(sec+60)+`,"exp":null}`)},
		{name: "EXP upper case", token: rawToken(fastSecret, hdr, `{"sub":"alice","EXP":`+num(sec+60)+`}`)},
		{name: "Exp and exp", token: rawToken(fastSecret, hdr, `{"sub":"alice","Exp":1,"exp":`+num(sec+60)+`}`)},

		// nbf and iat
		{name: "nbf past", token: rawToken(fastSecret, hdr, `{"sub":"alice","nbf":`+num(sec-1)+`,"exp":`+num(sec+60)+`}`), fast: true},
		{name: "nbf == now's second", token: rawToken(fastSecret, hdr, `{"sub":"alice","nbf":`+num(sec)+`,"exp":`+num(sec+60)+`}`), fast: true},
		{name: "nbf == now", token: rawToken(fastSecret, hdr, `{"sub":"alice","nbf":`+num(sec)+`,"exp":`+num(sec+60)+`}`), now: time.Unix(sec, 0), fast: true},
		{name: "nbf 1ns after now", token: rawToken(fastSecret, hdr, `{"sub":"alice","nbf":`+num(sec)+`,"exp":`+num(sec+60)+`}`), now: time.Unix(sec-1, 999_999_999), fast: true},
		{name: "nbf future", token: rawToken(fastSecret, hdr, `{"sub":"alice","nbf":`+num(sec+1)+`,"exp":`+num(sec+60)+`}`), fast: true},
		{name: "nbf future, expired", token: rawToken(fastSecret, hdr, `{"sub":"alice","nbf":`+num(sec+1)+`,"exp":`+num(sec-1)+`}`), fast: true},
		{name: "nbf future, no exp", token: rawToken(fastSecret, hdr, `{"sub":"alice","nbf":`+num(sec+1)+`}`), fast: true},
		{name: "nbf as string", token: rawToken(fastSecret, hdr, `{"sub":"alice","nbf":"x","exp":`+num(sec+60)+`}`)},
		{name: "nbf fractional", token: rawToken(fastSecret, hdr, `{"sub":"alice","nbf":`+num(sec)+`.5,"exp":`+num(sec+60)+`}`)},
		{name: "iat future", token: rawToken(fastSecret, hdr, `{"sub":"alice","iat":`+num(sec+3600)+`,"exp":`+num(sec+60)+`}`), fast: true},
		{name: "iat as string", token: rawToken(fastSecret, hdr, `{"sub":"alice","iat":"x","exp":`+num(sec+60)+`}`)},

		// signature and secret
		{name: "wrong signature", token: h + "." + p + "." + signText(fastSecret, h+"."+p+"x")},
		{name: "wrong secret", token: rawToken([]byte("other"), hdr, exp(sec+60))},
		{name: "signature cut", token: good[:len(good)-1]},
		{name: "signature longer", token: good + "A"},
		{name: "signature padded", token: good + "="},
		{name: "signature non-canonical last char", token: good[:len(good)-1] + string(s[len(s)-1]+1)},
		{name: "signature with newline", token: h + "." + p + "." + s[:20] + "\n" + s[20:]},
		{name: "no signature", token: h + "." + p + "."},

		// header
		{name: "alg none", token: rawToken(fastSecret, `{"alg":"none","typ":"JWT"}`, exp(sec+60))},
		{name: "alg none unsigned", token: base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`)) + "." + p + "."},
		{name: "alg HS384", token: rawToken(fastSecret, `{"alg":"HS384","typ":"JWT"}`, exp(sec+60))},
		{name: "alg RS256", token: rawToken(fastSecret, `{"alg":"RS256","typ":"JWT"}`, exp(sec+60))},
		{name: "header extra field", token: rawToken(fastSecret, `{"alg":"HS256","kid":"1","typ":"JWT"}`, exp(sec+60))},
		{name: "header spaced", token: rawToken(fastSecret, `{"alg": "HS256", "typ": "JWT"}`, exp(sec+60))},
		{name: "header padded", token: func() string { tok, _ := resign(fastSecret, hs256Header+"=."+p+".x"); return tok }()},
		{name: "header with newline", token: func() string { tok, _ := resign(fastSecret, h[:8]+"\n"+h[8:]+"."+p+".x"); return tok }()},

		// payload encoding and JSON
		{name: "payload padded", token: func() string { tok, _ := resign(fastSecret, h+"."+p+"=.x"); return tok }()},
		{name: "payload with newline", token: func() string { tok, _ := resign(fastSecret, h+"."+p[:10]+"\r\n"+p[10:]+".x"); return tok }()},
		{name: "payload standard base64", token: func() string {
			seg := base64.RawStdEncoding.EncodeToString([]byte(`{"sub":"a?>?","exp":` + num(sec+60) + `}`))
			if !strings.ContainsAny(seg, "+/") {
				t.Fatalf("payload %q has no + or /", seg)
			}
			tok, _ := resign(fastSecret, h+"."+seg+".x")
			return tok
		}()},
		{name: "payload garbage base64", token: func() string { tok, _ := resign(fastSecret, h+".!!!!.x"); return tok }()},
		{name: "payload one char", token: func() string { tok, _ := resign(fastSecret, h+".A.x"); return tok }()},
		{name: "payload empty", token: func() string { tok, _ := resign(fastSecret, h+"..x"); return tok }()},
		{name: "payload non-canonical bits", token: func() string {
			last := p[len(p)-1]
			if len(p)%4 == 0 || last == '_' {
				t.Fatalf("test payload %q has no spare bits", p)
			}
			tok, _ := resign(fastSecret, h+"."+p[:len(p)-1]+string(last+1)+".x")
			return tok
		}()},
		{name: "payload not JSON", token: rawToken(fastSecret, hdr, `sub=alice`)},
		{name: "payload array", token: rawToken(fastSecret, hdr, `[1]`)},
		{name: "payload trailing data", token: rawToken(fastSecret, hdr, exp(sec+60)+`x`)},
		{name: "payload two objects", token: rawToken(fastSecret, hdr, exp(sec+60)+`{}`)},
		{name: "payload spaced", token: rawToken(fastSecret, hdr, ` {"sub": "alice", "exp": `+num(sec+60)+`} `)},
		{name: "payload unterminated", token: rawToken(fastSecret, hdr, `{"sub":"alice","exp":`+num(sec+60))},
		{name: "payload trailing comma", token: rawToken(fastSecret, hdr, `{"sub":"alice","exp":`+num(sec+60)+`,}`)},
		{name: "nested claim", token: rawToken(fastSecret, hdr, `{"sub":"alice","x":{"a":1},"exp":`+num(sec+60)+`}`)},
		{name: "aud array", token: rawToken(fastSecret, hdr, `{"sub":"alice","aud":["a","b"],"exp":`+num(sec+60)+`}`)},
		{name: "aud number", token: rawToken(fastSecret, hdr, `{"sub":"alice","aud":5,"exp":`+num(sec+60)+`}`)},
		{name: "iss number", token: rawToken(fastSecret, hdr, `{"sub":"alice","iss":5,"exp":`+num(sec+60)+`}`)},
		{name: "jti null", token: rawToken(fastSecret, hdr, `{"sub":"alice","jti":null,"exp":`+num(sec+60)+`}`)},
		{name: "private null", token: rawToken(fastSecret, hdr, `{"sub":"alice","x":null,"exp":`+num(sec+60)+`}`)},
		{name: "private negative", token: rawToken(fastSecret, hdr, `{"sub":"alice","x":-1,"exp":`+num(sec+60)+`}`)},
		{name: "private leading zero", token: rawToken(fastSecret, hdr, `{"sub":"alice","x":01,"exp":`+num(sec+60)+`}`)},
		{name: "private upper case", token: rawToken(fastSecret, hdr, `{"sub":"alice","Role":"x","exp":`+num(sec+60)+`}`)},
		{name: "private long-s sub", token: rawToken(fastSecret, hdr, `{"sub":"alice","ſub":"mallory","exp":`+num(sec+60)+`}`)},
		{name: "private kelvin escaped", token: rawToken(fastSecret, hdr, `{"sub":"alice","\u212aid":"x","exp":`+num(sec+60)+`}`)},
		{name: "private kelvin", token: rawToken(fastSecret, hdr, "{\"sub\":\"alice\",\"\u212aid\":\"x\",\"exp\":"+num(sec+60)+"}")},
		{name: "private truthy", token: rawToken(fastSecret, hdr, `{"sub":"alice","x":tru,"exp":`+num(sec+60)+`}`)},

		// sub
		{name: "sub missing", token: rawToken(fastSecret, hdr, `{"exp":`+num(sec+60)+`}`), fast: true},
		{name: "sub empty", token: rawToken(fastSecret, hdr, `{"sub":"","exp":`+num(sec+60)+`}`), fast: true},
		{name: "sub DEL", token: rawToken(fastSecret, hdr, "{\"sub\":\"a\x7fb\",\"exp\":"+num(sec+60)+"}"), fast: true},
		{name: "sub C1 control", token: rawToken(fastSecret, hdr, "{\"sub\":\"a\u0085b\",\"exp\":"+num(sec+60)+"}"), fast: true},
		{name: "sub too long", token: rawToken(fastSecret, hdr, `{"sub":"`+strings.Repeat("a", MaxUserIDBytes+1)+`","exp":`+num(sec+60)+`}`), fast: true},
		{name: "sub longest", token: rawToken(fastSecret, hdr, `{"sub":"`+strings.Repeat("a", MaxUserIDBytes)+`","exp":`+num(sec+60)+`}`), fast: true},
		{name: "sub escaped", token: rawToken(fastSecret, hdr, `{"sub":"al\u0069ce","exp":`+num(sec+60)+`}`)},
		{name: "sub escaped control", token: rawToken(fastSecret, hdr, `{"sub":"a\u0000","exp":`+num(sec+60)+`}`)},
		{name: "sub raw control", token: rawToken(fastSecret, hdr, "{\"sub\":\"a\tb\",\"exp\":"+num(sec+60)+"}")},
		{name: "sub invalid UTF-8", token: rawToken(fastSecret, hdr, "{\"sub\":\"a\xffb\",\"exp\":"+num(sec+60)+"}")},
		{name: "sub number", token: rawToken(fastSecret, hdr, `{"sub":5,"exp":`+num(sec+60)+`}`)},
		{name: "sub null", token: rawToken(fastSecret, hdr, `{"sub":null,"exp":`+num(sec+60)+`}`)},
		{name: "sub twice", token: rawToken(fastSecret, hdr, `{"sub":"alice","sub":"bob","exp":`+num(sec+60)+`}`)},
		{name: "Sub upper case", token: rawToken(fastSecret, hdr, `{"Sub":"alice","exp":`+num(sec+60)+`}`)},

		// max lifetime
		{name: "max lifetime kept", token: good, maxLifetime: time.Minute, fast: true},
		{name: "max lifetime exceeded", token: good, maxLifetime: 59 * time.Second, fast: true},
		{name: "max lifetime, exp far", token: rawToken(fastSecret, hdr, `{"sub":"alice","exp":999999999999}`), maxLifetime: time.Hour, fast: true},

		// segments
		{name: "empty", token: ""},
		{name: "one segment", token: h},
		{name: "two segments", token: h + "." + p},
		{name: "four segments", token: good + ".x"},
		{name: "extra dot in signature", token: h + "." + p + "." + s[:10] + "." + s[11:]},
		{name: "dots only", token: ".."},
		{name: "garbage", token: "a.b.c"},
		{name: "too long", token: rawToken(fastSecret, hdr, `{"sub":"alice","pad":"`+strings.Repeat("x", maxFastTokenBytes)+`","exp":`+num(sec+60)+`}`)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now := tc.now
			if now.IsZero() {
				now = fastNow
			}
			checkSameResult(t, fastSecret, tc.token, now, tc.maxLifetime)
			_, _, err := verifyTokenFast(fastSecret, tc.token, now)
			if took := err != errTokenNotCanonical; took != tc.fast {
				t.Errorf("fast path taken: %v, want %v (%v)", took, tc.fast, err)
			}
		})
	}
}

// TestVerifyTokenFastSecrets checks that the pooled HMAC follows the secret it is given.
func TestVerifyTokenFastSecrets(t *testing.T) {
	for i, secret := range [][]byte{[]byte("a"), []byte("b"), nil, {}, []byte(strings.Repeat("k", 100)), []byte("a")} {
		tok, err := SignToken(secret, "alice", fastNow.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		for _, other := range [][]byte{[]byte("a"), []byte("b"), nil, []byte(strings.Repeat("k", 100))} {
			checkSameResult(t, other, tok, fastNow, 0)
		}
		if u, _, err := verifyTokenFast(secret, tok, fastNow); err != nil || u != "alice" {
			t.Fatalf("secret %d: %q, %v", i, u, err)
		}
	}
}

// TestVerifyTokenFastConcurrent verifies tokens of two secrets at once, sharing the pool.
func TestVerifyTokenFastConcurrent(t *testing.T) {
	secrets := [][]byte{[]byte("one"), []byte("two")}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			secret := secrets[g%2]
			user := "user-" + strconv.Itoa(g)
			tok, err := SignToken(secret, user, fastNow.Add(time.Hour))
			if err != nil {
				t.Error(err)
				return
			}
			for range 200 {
				if u, _, err := VerifyTokenExpiry(secret, tok, fastNow, 0); err != nil || u != user {
					t.Errorf("%q, %v; want %q", u, err, user)
					return
				}
				if _, _, err := VerifyTokenExpiry(secrets[(g+1)%2], tok, fastNow, 0); err == nil {
					t.Error("a token verifies under the other secret")
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestVerifyTokenFastAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's sync.Pool drops items")
	}
	tok, err := SignToken(fastSecret, "alice", fastNow.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	VerifyTokenExpiry(fastSecret, tok, fastNow, 0)
	allocs := testing.AllocsPerRun(100, func() {
		if _, _, err := VerifyTokenExpiry(fastSecret, tok, fastNow, 0); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 2 {
		t.Errorf("%v allocations per verification, want at most 2", allocs)
	}
}

// TestVerifyTokenFastRandomClaims compares the two paths on signed tokens whose claims are drawn from
// canonical members and near misses, at clocks around their times.
func TestVerifyTokenFastRandomClaims(t *testing.T) {
	sec := fastNow.Unix()
	num := func(v int64) string { return strconv.FormatInt(v, 10) }
	keys := []string{"sub", "sub", "exp", "exp", "nbf", "iat", "iss", "aud", "jti", "role", "x_1",
		"Sub", "EXP", "ſub", `s\u0075b`, "k\u212a", "", "é"}
	values := []string{`"alice"`, `"alice"`, `"bob"`, `""`, `"é"`, `"a\u0000"`, `"a\"b"`, "\"a\tb\"", "\"\xff\"",
		num(sec - 1), num(sec), num(sec + 1), num(sec + 60), num(sec + 60), "0", "01", "-1", "999999999999",
		"9999999999999", "1.8e9", num(sec) + ".5", `"` + num(sec+60) + `"`, "null", "true", "false", "tru",
		"[]", `["a"]`, "{}"}
	nows := []time.Time{fastNow, time.Unix(sec, 0), time.Unix(sec+1, 0), time.Unix(sec-1, 999_999_999), time.Unix(sec+60, 0)}
	rng := rand.New(rand.NewPCG(1, 2))
	fast := 0
	const n = 20000
	for range n {
		var b strings.Builder
		b.WriteByte('{')
		for i := range rng.IntN(6) {
			if i > 0 {
				b.WriteByte(',')
			}
			if rng.IntN(50) == 0 {
				b.WriteByte(' ')
			}
			b.WriteString(`"` + keys[rng.IntN(len(keys))] + `":` + values[rng.IntN(len(values))])
		}
		b.WriteByte('}')
		if rng.IntN(50) == 0 {
			b.WriteString(" ")
		}
		tok := rawToken(fastSecret, `{"alg":"HS256","typ":"JWT"}`, b.String())
		now := nows[rng.IntN(len(nows))]
		maxLifetime := time.Duration(rng.IntN(3)) * 30 * time.Second
		checkSameResult(t, fastSecret, tok, now, maxLifetime)
		if _, _, err := verifyTokenFast(fastSecret, tok, now); err != errTokenNotCanonical {
			fast++
		}
	}
	if fast < n/10 {
		t.Fatalf("only %d of %d tokens took the fast path", fast, n)
	}
	t.Logf("%d of %d tokens took the fast path", fast, n)
}

// FuzzVerifyTokenFast checks that VerifyTokenExpiry, fast path and all, gives the library's results:
// for the token as given, for it with a valid signature, and for tokens of the payload JSON under the
// canonical header and under the token's.
func FuzzVerifyTokenFast(f *testing.F) {
	now := fastNow.Unix()
	for _, exp := range []int64{now - 1, now, now + 1, now + 3600, 0, 999999999999} {
		tok, err := SignToken(fastSecret, "alice", time.Unix(exp, 0))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(tok, `{"sub":"alice","exp":1800000060}`, now, int64(250_000_000), int64(0))
		f.Add(tok[:len(tok)-1], `{"sub":"bob","nbf":1800000000,"exp":1800000060}`, now, int64(0), int64(30))
	}
	for _, s := range []struct{ token, payload string }{
		{"", `{}`},
		{"a.b.c", `{"exp":1800000060}`},
		{hs256Header + ".eyJzdWIiOiJhIn0.x", `{"sub":"a","exp":1.8e9}`},
		{hs256HeaderTypFirst + ".eyJzdWIiOiJhIn0.x", `{"sub":"a","exp":"1800000060"}`},
		{hs256HeaderAlgOnly + ".eyJzdWIiOiJhIn0=.x", `{"iss":"i","sub":"a","aud":"b","exp":1800000060,"nbf":1,"iat":2,"jti":"j","x":true}`},
		{"eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.", `{"sub":"a","x":[1],"exp":1800000060}`},
		{"eyJhbGciOiJIUzM4NCJ9.e30.x", `{"sub":"a\u00e9","exp":1800000060,"exp":null}`},
	} {
		f.Add(s.token, s.payload, now, int64(999_999_999), int64(3600))
	}
	f.Fuzz(func(t *testing.T, token, payload string, nowSec, nowNsec, lifetimeSec int64) {
		now := time.Unix(nowSec, nowNsec)
		maxLifetime := time.Duration(lifetimeSec) * time.Second
		checkSameResult(t, fastSecret, token, now, maxLifetime)
		if tok, ok := resign(fastSecret, token); ok {
			checkSameResult(t, fastSecret, tok, now, maxLifetime)
		}
		headers := []string{hs256Header}
		if h, _, ok := strings.Cut(token, "."); ok && h != hs256Header {
			headers = append(headers, h)
		}
		for _, h := range headers {
			text := h + "." + base64.RawURLEncoding.EncodeToString([]byte(payload))
			checkSameResult(t, fastSecret, text+"."+signText(fastSecret, text), now, maxLifetime)
		}
	})
}

func BenchmarkVerifyTokenExpiry(b *testing.B) {
	tok, err := SignToken(fastSecret, "user-12345", fastNow.Add(time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name   string
		verify func([]byte, string, time.Time, time.Duration) (string, time.Time, error)
	}{
		{"fast", VerifyTokenExpiry},
		{"library", verifyTokenLibrary},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := bc.verify(fastSecret, tok, fastNow, 24*time.Hour); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
