package loadgen

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzParseURL feeds arbitrary text to the target URL parser: it never panics, and what it accepts
// is a ws:// URL with a host and port whose metrics URL is the same host's /metrics.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"ws://127.0.0.1:8080/ws", "127.0.0.1:9", "ws://[::1]:80", "wss://h:1/x", "http://a:1", "ws://h", "ws://h:1/?q=1#f", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		ep, err := ParseURL(raw)
		if err != nil {
			return
		}
		u, perr := url.Parse(ep.URL)
		if perr != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Port() == "" || u.Path == "" {
			t.Fatalf("ParseURL(%q) accepted %q", raw, ep.URL)
		}
		m, perr := url.Parse(ep.MetricsURL)
		if perr != nil || m.Host != u.Host || !strings.HasSuffix(m.Path, "/metrics") {
			t.Fatalf("ParseURL(%q): metrics URL %q for %q", raw, ep.MetricsURL, ep.URL)
		}
		if again, err := ParseURL(ep.URL); err != nil || again != ep {
			t.Fatalf("ParseURL(%q) = %+v does not parse back the same: %+v %v", raw, ep, again, err)
		}
	})
}
