package refserver

import (
	"flag"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestArgsRoundTrip sets every Config field to a value that is neither zero nor the default and
// checks that what Args writes, RegisterFlags reads back whole: a field added to Config without a
// flag fails here.
func TestArgsRoundTrip(t *testing.T) {
	var cfg Config
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
			f.Set(reflect.ValueOf(Flaws{FlawNoDrain: true, FlawNoAuthCache: true}))
		default:
			t.Fatalf("Config.%s has kind %s: teach this test and RegisterFlags", name, f.Kind())
		}
	}
	args := cfg.Args()
	got := DefaultConfig()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	got.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	gv := reflect.ValueOf(got)
	for i := range v.NumField() {
		if want, have := v.Field(i).Interface(), gv.Field(i).Interface(); !reflect.DeepEqual(want, have) {
			t.Errorf("Config.%s: wrote %v, read back %v (args %q)", v.Type().Field(i).Name, want, have, args)
		}
	}
	// Zero fields stand for the defaults: nothing is written for them.
	if args := (Config{}).Args(); len(args) != 0 {
		t.Errorf("Config{}.Args() = %q, want none", args)
	}
}

func TestApplyEnv(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(Config) bool
		wantErr string
	}{
		{"twin sets an unset flag", nil, map[string]string{"REFSERVER_HEARTBEAT_INTERVAL": "45s"},
			func(c Config) bool { return c.HeartbeatInterval == 45*time.Second }, ""},
		{"command line wins", []string{"--heartbeat-interval=1s"}, map[string]string{"REFSERVER_HEARTBEAT_INTERVAL": "45s"},
			func(c Config) bool { return c.HeartbeatInterval == time.Second }, ""},
		{"auth secret from SQUALL_AUTH_SECRET", nil, map[string]string{AuthSecretEnv: "s"},
			func(c Config) bool { return c.AuthSecret == "s" }, ""},
		{"REFSERVER_AUTH_SECRET first", nil, map[string]string{AuthSecretEnv: "s", "REFSERVER_AUTH_SECRET": "r"},
			func(c Config) bool { return c.AuthSecret == "r" }, ""},
		{"flaws and origins", nil, map[string]string{"REFSERVER_FLAW": "no-drain", "REFSERVER_ALLOWED_ORIGINS": "https://a, https://b"},
			func(c Config) bool { return c.Flaws.Has(FlawNoDrain) && len(c.AllowedOrigins) == 2 }, ""},
		{"every bad value named", nil, map[string]string{"REFSERVER_HEARTBEAT_INTERVAL": "soon", "REFSERVER_MAX_CONNS": "many"},
			nil, "REFSERVER_HEARTBEAT_INTERVAL=\"soon\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			cfg.RegisterFlags(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			err := ApplyEnv(fs, func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "REFSERVER_MAX_CONNS") {
					t.Fatalf("err %v, want %q and REFSERVER_MAX_CONNS", err, tt.wantErr)
				}
				return
			}
			if err != nil || !tt.check(cfg) {
				t.Fatalf("err %v, config %+v", err, cfg)
			}
		})
	}
}
