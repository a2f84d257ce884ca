package scenarios

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/squall-dev/squall/loadgen"
	"github.com/squall-dev/squall/refserver"
)

func TestPlanMapsEveryField(t *testing.T) {
	src := `
name: mapped
seed: 7
time_scale: 0.5
schedule_lag_bound: 20ms
settle: 4s
cohorts:
  - name: a
    count: 12
    source_ips: 127.9.0.0/24
    behaviour:
      rooms: {per_client: 2, count: 6, size: 4, prefix: doc-}
      send_interval: 2s
      payload: 100
      heartbeat: 10s
      ws_ping: 20s
      read_timeout: 30s
      reconnect: {policy: ladder, steps: [0s, 2s], max_attempts: 5}
      resume: true
      exit: {kind: vanish, after: 8s, jitter: 2s, share: 0.5}
      tabs_per_user: 3
      misbehave: {reorder_every: 5, drop_every: 7, dupe_every: 9, ignore_pings: true, heartbeat_factor: 2}
phases:
  - {name: up, kind: ramp, rate: 10, target: 6}
  - {kind: ramp, rate: 10}
  - {kind: hold, duration: 20s}
  - {kind: ramp-down, rate: 0}
`
	s, err := Parse("mapped.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	p, _, err := s.Plan()
	if err != nil {
		t.Fatal(err)
	}
	want := loadgen.Plan{
		Name: "mapped", Seed: 7, ScheduleLagBound: 20 * time.Millisecond, Settle: 2 * time.Second,
		Model: loadgen.Model{Kind: loadgen.ModelClosed},
		Cohorts: []loadgen.Cohort{{
			Name: "a", Count: 12, SourceIPs: "127.9.0.0/24",
			Behaviour: loadgen.Behaviour{
				RoomsPerClient: 2, RoomCount: 6, RoomSize: 4, RoomPrefix: "doc-",
				SendInterval: time.Second, PayloadSize: 100, HeartbeatInterval: 5 * time.Second,
				PingInterval: 10 * time.Second, ReadTimeout: 15 * time.Second,
				Reconnect:   loadgen.ReconnectPolicy{Kind: loadgen.PolicyLadder, Steps: []time.Duration{0, time.Second}, MaxAttempts: 5},
				Resume:      true,
				Exit:        loadgen.Exit{Kind: loadgen.ExitVanish, After: 4 * time.Second, Jitter: time.Second, Share: 0.5},
				TabsPerUser: 3,
				Misbehave:   loadgen.Misbehaviour{SwapEvery: 5, DropEvery: 7, DupeEvery: 9, IgnorePings: true, HeartbeatFactor: 2},
			},
		}},
		Phases: []loadgen.Phase{
			{Name: "up", Kind: loadgen.PhaseRamp, Rate: 20, Target: 6},
			{Name: "ramp", Kind: loadgen.PhaseRamp, Rate: 20},
			{Name: "hold", Kind: loadgen.PhaseHold, Duration: 10 * time.Second},
			{Name: "ramp-down", Kind: loadgen.PhaseRampDown},
		},
	}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("plan\n%+v\nwant\n%+v", p, want)
	}
}

func TestSmokePlanAndGateway(t *testing.T) {
	s, err := Load("smoke.yaml", WithFlaws([]string{"no-server-ping"}))
	if err != nil {
		t.Fatal(err)
	}
	p, _, err := s.Plan()
	if err != nil {
		t.Fatal(err)
	}
	if p.Clients() != 200 || len(p.Phases) != 3 {
		t.Errorf("plan: %d clients, %d phases", p.Clients(), len(p.Phases))
	}
	opts, err := s.EmbeddedOptions()
	if err != nil {
		t.Fatal(err)
	}
	if opts.Nodes != 1 || !opts.Config.Flaws.Has("no-server-ping") || opts.Config.HeartbeatInterval != 30*time.Second {
		t.Errorf("gateway options: %+v", opts)
	}
	// An explicit jitter of 0 is no jitter, not the default.
	src := strings.Replace(minimal, "count: 10\n", "count: 10\n    behaviour: {reconnect: {policy: backoff, jitter: 0s}}\n", 1)
	s, err = Parse("j.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if r := s.Cohorts[0].Behaviour.Reconnect; r.Jitter != 0 || r.Initial != time.Second || r.LoadgenPolicy().Jitter >= 0 {
		t.Errorf("jitter 0: %+v → %+v", r, r.LoadgenPolicy())
	}
	// The admission, drain, session and auth-backend settings reach the gateway's config.
	s, err = Parse("g.yaml", []byte(minimal+`target: {accept_rate: 50, accept_burst: 7, storm_alert_rate: 3, storm_alert_burst: 4,
  auth_latency: 15ms, auth_failure_rate: 0.25, auth_cache_ttl: 9s, drain_spread: 3s, session_ttl: 40s}
`))
	if err != nil {
		t.Fatal(err)
	}
	opts, err = s.EmbeddedOptions()
	if err != nil {
		t.Fatal(err)
	}
	c := opts.Config
	want := refserver.Config{AcceptRate: 50, AcceptBurst: 7, StormAlertRate: 3, StormAlertBurst: 4,
		AuthLatency: 15 * time.Millisecond, AuthFailRate: 0.25, AuthCacheTTL: 9 * time.Second,
		DrainSpread: 3 * time.Second, SessionTTL: 40 * time.Second}
	got := refserver.Config{AcceptRate: c.AcceptRate, AcceptBurst: c.AcceptBurst, StormAlertRate: c.StormAlertRate,
		StormAlertBurst: c.StormAlertBurst, AuthLatency: c.AuthLatency, AuthFailRate: c.AuthFailRate,
		AuthCacheTTL: c.AuthCacheTTL, DrainSpread: c.DrainSpread, SessionTTL: c.SessionTTL}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("gateway settings:\n got %+v\nwant %+v", got, want)
	}
}
