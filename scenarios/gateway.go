package scenarios

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/squall-dev/squall/refserver"
)

// gatewaySetting is one gateway setting of a scenario's target: a Target field tagged
// `gateway:"<flag>"`, which is the refserver flag of that name.
type gatewaySetting struct {
	yaml  string        // the field's YAML key
	flag  string        // the refserver flag
	rate  bool          // scaled as a rate (scale:"rate")
	value reflect.Value // the field (settable when the Target was addressed)
}

// gatewaySettings lists t's gateway settings in field order.
func (t *Target) gatewaySettings() []gatewaySetting {
	v := reflect.ValueOf(t).Elem()
	var out []gatewaySetting
	for _, f := range reflect.VisibleFields(v.Type()) {
		name, ok := f.Tag.Lookup("gateway")
		if !ok {
			continue
		}
		key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		out = append(out, gatewaySetting{yaml: key, flag: name, rate: f.Tag.Get("scale") == "rate", value: v.FieldByIndex(f.Index)})
	}
	return out
}

// text is the setting's value as its refserver flag reads it.
func (g gatewaySetting) text() string {
	switch x := g.value.Interface().(type) {
	case time.Duration:
		return x.String()
	case int:
		return strconv.Itoa(x)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case []string:
		return strings.Join(x, ",")
	case string:
		return x
	}
	panic(fmt.Sprintf("scenarios: gateway setting %s has type %s", g.yaml, g.value.Type()))
}

// gatewayFlags is a flag set bound to cfg: refserver's one list of settings.
func gatewayFlags(cfg *refserver.Config) *flag.FlagSet {
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg.RegisterFlags(fs)
	return fs
}

// fillGatewayDefaults writes the gateway's default into every duration and rate setting the file
// left at zero, so that time_scale reaches them.
func (t *Target) fillGatewayDefaults() {
	def := refserver.DefaultConfig()
	defaults := gatewayFlags(&def)
	for _, g := range t.gatewaySettings() {
		if !g.value.IsZero() {
			continue
		}
		text := defaults.Lookup(g.flag).DefValue
		switch {
		case g.value.Type() == reflect.TypeFor[time.Duration]():
			d, err := time.ParseDuration(text)
			if err == nil {
				g.value.SetInt(int64(d))
			}
		case g.rate:
			f, err := strconv.ParseFloat(text, 64)
			if err == nil {
				g.value.SetFloat(f)
			}
		}
	}
}

// GatewayConfig is the embedded gateway's configuration: every gateway setting of the target
// (already time-scaled) applied by its refserver flag over the zero Config (a zero field is the
// gateway's default), in dev mode. It fails for settings the gateway refuses (Config.Validate).
func (t Target) GatewayConfig() (refserver.Config, error) {
	cfg := refserver.Config{Dev: true}
	fs := gatewayFlags(&cfg)
	var errs []error
	for _, g := range t.gatewaySettings() {
		if g.value.IsZero() {
			continue
		}
		if err := fs.Set(g.flag, g.text()); err != nil {
			errs = append(errs, fmt.Errorf("target.%s: %w", g.yaml, err))
		}
	}
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	return cfg, errors.Join(errs...)
}
