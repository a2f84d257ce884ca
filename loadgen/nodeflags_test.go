package loadgen

import (
	"context"
	"flag"
	"io"
	"net/http"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/squall-dev/squall/refserver"
)

// TestNodeArgsRoundTrip sets every Config field to a value that is neither zero nor the default and
// checks that what NodeArgs writes, RunNodeMain's parser reads back whole: a field added to
// refserver.Config but not to bindNodeFlags fails here.
func TestNodeArgsRoundTrip(t *testing.T) {
	var cfg refserver.Config
	v := reflect.ValueOf(&cfg).Elem()
	for i := range v.NumField() {
		f, name := v.Field(i), v.Type().Field(i).Name
		switch f.Kind() {
		case reflect.String:
			f.SetString("v-" + strings.ToLower(name))
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Int, reflect.Int64:
			if f.Type() == reflect.TypeFor[time.Duration]() {
				f.SetInt(int64(time.Duration(1234+i) * time.Millisecond))
			} else {
				f.SetInt(int64(7 + i))
			}
		case reflect.Float64:
			f.SetFloat(0.25 + float64(i))
		case reflect.Slice:
			f.Set(reflect.ValueOf([]string{"http://a.example", "http://b.example"}))
		case reflect.Map:
			f.Set(reflect.ValueOf(refserver.Flaws{refserver.FlawNoDrain: true, refserver.FlawNoAuthCache: true}))
		default:
			t.Fatalf("Config.%s has kind %s: teach this test and bindNodeFlags", name, f.Kind())
		}
	}
	args := NodeArgs(cfg)
	got, level, format, err := parseNodeArgs(args, io.Discard)
	if err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	if level != "warn" || format != "text" {
		t.Errorf("log level %q format %q, want warn text", level, format)
	}
	gv := reflect.ValueOf(got)
	for i := range v.NumField() {
		if want, have := v.Field(i).Interface(), gv.Field(i).Interface(); !reflect.DeepEqual(want, have) {
			t.Errorf("Config.%s: wrote %v, node read %v (args %q)", v.Type().Field(i).Name, want, have, args)
		}
	}

	// Zero fields stand for the defaults: nothing is written for them.
	if args := NodeArgs(refserver.Config{}); !slices.Equal(args, []string{"--log-level=warn"}) {
		t.Errorf("NodeArgs(zero) = %q", args)
	}
	if d, _, _, err := parseNodeArgs(nil, io.Discard); err != nil || d.AcceptBurst != refserver.DefaultConfig().AcceptBurst {
		t.Errorf("parse no args: %v, accept burst %d", err, d.AcceptBurst)
	}
}

// flagNameRE finds the flag names refserver/cmd/refserver registers.
var flagNameRE = regexp.MustCompile(`fs\.\w+\([^,]+,\s*"([a-z][a-z0-9-]*)"`)

// TestNodeFlagsCover checks that the node and bin/refserver take the same flags (the binary's flag
// registration lives in package main and cannot be shared, so its source is read instead).
func TestNodeFlagsCover(t *testing.T) {
	src, err := os.ReadFile("../refserver/cmd/refserver/main.go")
	if err != nil {
		t.Fatal(err)
	}
	var level, format string
	var cfg refserver.Config
	fs := flag.NewFlagSet("node", flag.ContinueOnError)
	bindNodeFlags(fs, &cfg, &level, &format)
	var names []string
	for _, m := range flagNameRE.FindAllStringSubmatch(string(src), -1) {
		names = append(names, m[1])
		if fs.Lookup(m[1]) == nil {
			t.Errorf("bin/refserver has --%s, the embedded node does not", m[1])
		}
	}
	if len(names) < 40 {
		t.Fatalf("found only %d flags in refserver's main.go (%q): the pattern no longer matches", len(names), names)
	}
	// And the other way: what NodeArgs writes, a node run with bin/refserver (EmbeddedOptions.Binary) reads.
	fs.VisitAll(func(f *flag.Flag) {
		if !slices.Contains(names, f.Name) {
			t.Errorf("the embedded node has --%s, bin/refserver does not", f.Name)
		}
	})
	for _, name := range []string{"accept-rate", "auth-fail-rate", "drain-spread", "session-ttl", "storm-alert-burst"} {
		if !slices.Contains(names, name) {
			t.Errorf("pattern missed --%s in refserver's main.go", name)
		}
	}
}

// TestChildNodeTakesAdmissionSettings starts a child-process node with a two-token admission
// bucket that hardly refills: the third attempt is shed (503), which a node running on the default
// bucket (1 000 tokens) would not do.
func TestChildNodeTakesAdmissionSettings(t *testing.T) {
	cfg := refserver.Config{AcceptRate: 0.001, AcceptBurst: 2, AuthLatency: 10 * time.Millisecond, SessionTTL: 3 * time.Second}
	e := startEmbedded(t, EmbeddedOptions{Process: true, Config: cfg})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var codes []int
	for range 3 {
		ws, resp, err := websocket.DefaultDialer.DialContext(ctx, e.Nodes()[0].URL(), nil)
		if ws != nil {
			ws.Close()
		}
		if resp == nil {
			t.Fatalf("dial: %v", err)
		}
		codes = append(codes, resp.StatusCode)
	}
	want := []int{http.StatusSwitchingProtocols, http.StatusSwitchingProtocols, http.StatusServiceUnavailable}
	if !slices.Equal(codes, want) {
		t.Errorf("three upgrades: %v, want %v (admitted, admitted, shed)", codes, want)
	}
}
