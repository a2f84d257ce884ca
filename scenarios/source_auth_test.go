package scenarios

import (
	"testing"

	"github.com/squall-dev/squall/reports"
)

func TestAuthBackendCalls(t *testing.T) {
	point := func(v map[string]float64) reports.TelemetryPoint { return reports.TelemetryPoint{Values: v} }
	tests := []struct {
		name   string
		points []reports.TelemetryPoint
		agg    Agg
		want   float64
		ok     bool
	}{
		{"no auth metric", []reports.TelemetryPoint{point(map[string]float64{"ws_connections_active": 3})}, AggCount, 0, false},
		{"backend calls of every result during the run", []reports.TelemetryPoint{
			point(map[string]float64{`ws_auth_requests_total{cached="false",result="ok"}`: 2}),
			point(map[string]float64{
				`ws_auth_requests_total{cached="false",result="ok"}`:          10,
				`ws_auth_requests_total{cached="false",result="invalid"}`:     1,
				`ws_auth_requests_total{cached="false",result="error"}`:       2,
				`ws_auth_requests_total{cached="true",result="ok"}`:           50,
				`ws_auth_requests_total{cached="false",result="unavailable"}`: 7,
				`ws_auth_requests_total`:                                      70,
			}),
		}, AggCount, 8 + 1 + 2, true}, // ok rose from 2; invalid and error appeared during the run
		{"rate over the run", []reports.TelemetryPoint{
			point(map[string]float64{`ws_auth_requests_total{cached="false",result="ok"}`: 500}),
			point(map[string]float64{`ws_auth_requests_total{cached="false",result="ok"}`: 520}),
		}, AggRate, 2, true},
		{"earlier runs against the same gateway are left out", []reports.TelemetryPoint{
			point(map[string]float64{`ws_auth_requests_total{cached="false",result="ok"}`: 9000}),
			point(map[string]float64{`ws_auth_requests_total{cached="false",result="ok"}`: 9000}),
		}, AggCount, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := authBackendCalls(reports.Telemetry{Points: tc.points}, tc.agg, 10)
			if ok != tc.ok || got != tc.want {
				t.Errorf("got %v, %v; want %v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}
