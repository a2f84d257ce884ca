package loadgen

import (
	"testing"

	"github.com/squall-dev/squall/internal/gwtest"
	"github.com/squall-dev/squall/refserver"
)

// testGateway is the reference gateway in this process, as a run's target.
type testGateway struct {
	*gwtest.Gateway
	target Target
}

func startGateway(t testing.TB, cfg refserver.Config) *testGateway {
	t.Helper()
	g := gwtest.Start(t, cfg)
	return &testGateway{Gateway: g, target: Target{
		Endpoints: []Endpoint{{URL: g.URL(), MetricsURL: g.MetricsURL()}}, Auth: AuthSpec{Secret: g.Config.AuthSecret},
	}}
}

// opts are the run options of plan p against the in-process gateway, whose sockets count against
// this process's open files.
func (g *testGateway) opts(p Plan, o RunOptions) RunOptions {
	o.LocalFDs = p.Clients()
	return o
}
