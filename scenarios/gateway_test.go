package scenarios

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/squall-dev/squall/refserver"
)

// TestGatewaySettingsReachTheConfig gives every gateway setting of a target a value that is not the
// gateway's default and checks that GatewayConfig hands it to the refserver flag its tag names:
// a tag naming no flag, or a setting that does not arrive, fails here.
func TestGatewaySettingsReachTheConfig(t *testing.T) {
	var tg Target
	settings := tg.gatewaySettings()
	if len(settings) < 20 {
		t.Fatalf("only %d gateway settings found", len(settings))
	}
	for i, g := range settings {
		switch g.value.Interface().(type) {
		case time.Duration:
			g.value.SetInt(int64(time.Duration(1100+i) * time.Millisecond))
		case int:
			g.value.SetInt(int64(3 + i))
		case float64:
			g.value.SetFloat(0.5 + float64(i)/100)
		case []string:
			g.value.Set(reflect.ValueOf([]string{string(refserver.FlawNoDrain)}))
		case string:
			g.value.SetString(refserver.IONbio) // the one string setting: the I/O model
		default:
			t.Fatalf("target.%s: teach this test its type %s", g.yaml, g.value.Type())
		}
	}
	tg.HeartbeatTimeout = 10 * tg.HeartbeatInterval // the gateway checks timeout > interval
	tg.AuthFailureRate = 0.25
	cfg, err := tg.GatewayConfig()
	if err != nil {
		t.Fatal(err)
	}
	set := gatewayFlags(&cfg)
	for _, g := range tg.gatewaySettings() {
		f := set.Lookup(g.flag)
		if f == nil {
			t.Errorf("target.%s: refserver has no flag --%s", g.yaml, g.flag)
			continue
		}
		if got := f.Value.String(); got != g.text() {
			t.Errorf("target.%s = %s reached --%s as %s", g.yaml, g.text(), g.flag, got)
		}
	}
	if !cfg.Dev || !slices.Equal([]string{cfg.Flaws.String()}, tg.Flaws) {
		t.Errorf("dev %v, flaws %v", cfg.Dev, cfg.Flaws)
	}
}
