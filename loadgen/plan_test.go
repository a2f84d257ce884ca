package loadgen

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestPlanValidate(t *testing.T) {
	good := smallPlan(10, 2, time.Second)
	if err := good.Validate(); err != nil {
		t.Fatalf("valid plan: %v", err)
	}
	tests := []struct {
		name string
		edit func(p *Plan)
		want []string // every fragment must appear: all problems are reported at once
	}{
		{"no cohorts and phases", func(p *Plan) { p.Cohorts, p.Phases = nil, nil }, []string{"no cohorts", "no phases"}},
		{"bad cohort", func(p *Plan) {
			p.Cohorts[0].Count = -1
			p.Cohorts[0].SourceIPs = "10.0.0.0/8"
			p.Cohorts[0].Behaviour.Exit.Kind = "slam"
			p.Cohorts[0].Behaviour.Reconnect.Kind = "exponential"
		}, []string{"negative count", "inside 127.0.0.0/8", `unknown exit "slam"`, `unknown reconnect policy "exponential"`}},
		{"duplicate cohort", func(p *Plan) { p.Cohorts = append(p.Cohorts, p.Cohorts[0]) }, []string{"duplicate name"}},
		{"bad phases", func(p *Plan) { p.Phases = []Phase{{Kind: "spike"}, {Kind: PhaseHold}} }, []string{`unknown kind "spike"`, "hold without duration"}},
		{"open model without rate", func(p *Plan) { p.Model.Kind = ModelOpen }, []string{"open model needs"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := smallPlan(10, 2, time.Second)
			tc.edit(&p)
			err := p.Validate()
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestPlanJSONRoundTrip(t *testing.T) {
	p := smallPlan(10, 2, time.Second)
	p.Cohorts[0].Behaviour.Reconnect = ReconnectPolicy{Kind: PolicyLadder, Steps: []time.Duration{0, time.Second}}
	p.Model = Model{Kind: ModelOpen, ArrivalRate: 5, Lifetime: time.Second}
	p.StartAt = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var q Plan
	if err := json.Unmarshal(b, &q); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p, q) {
		t.Errorf("round trip changed the plan:\n%+v\n%+v", p, q)
	}
}

func TestPlanSplit(t *testing.T) {
	p := Plan{Name: "big", Seed: 9,
		Cohorts: []Cohort{
			{Name: "a", Count: 50001, Behaviour: Behaviour{RoomSize: 100, TabsPerUser: 2}},
			{Name: "b", Count: 7, SourceIPs: "127.9.0.0/24"},
		},
		Phases: []Phase{{Kind: PhaseRamp, Rate: 3000}, {Kind: PhaseHold, Duration: time.Second}},
	}
	parts := p.Split(3)
	if len(parts) != 3 {
		t.Fatalf("%d parts", len(parts))
	}
	for ci, c := range p.Cohorts {
		total := 0
		users := map[int]bool{}
		var prefixes []netip.Prefix
		for w, q := range parts {
			if err := q.Validate(); err != nil {
				t.Fatalf("part %d: %v", w, err)
			}
			qc := q.Cohorts[ci]
			total += qc.Count
			tabs := max(qc.Behaviour.TabsPerUser, 1)
			for u := qc.UserOffset; u < qc.UserOffset+(qc.Count+tabs-1)/tabs; u++ {
				if users[u] {
					t.Errorf("cohort %s: user %d in two workers", c.Name, u)
				}
				users[u] = true
			}
			if want := c.Behaviour.roomCount(c.Count); qc.Behaviour.roomCount(qc.Count) != want {
				t.Errorf("cohort %s part %d: %d rooms, want the whole plan's %d", c.Name, w, qc.Behaviour.roomCount(qc.Count), want)
			}
			pfx, err := sourcePrefix(qc.SourceIPs)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range prefixes {
				if o.Overlaps(pfx) {
					t.Errorf("cohort %s: source ranges %s and %s overlap", c.Name, o, pfx)
				}
			}
			prefixes = append(prefixes, pfx)
			if q.Phases[0].Rate != 1000 {
				t.Errorf("part %d ramp rate %v, want 1000", w, q.Phases[0].Rate)
			}
		}
		if total != c.Count {
			t.Errorf("cohort %s: parts hold %d clients, want %d", c.Name, total, c.Count)
		}
	}
	if got := p.FDs(); got < p.Clients() {
		t.Errorf("FDs %d below the client count %d", got, p.Clients())
	}
	if n := parts[0].FDs(); n > 19000 {
		t.Errorf("a third of 50 008 clients needs %d files", n)
	}
}

func TestPlanPart(t *testing.T) {
	p := Plan{Name: "routes", Seed: 3,
		Cohorts: []Cohort{
			{Name: "direct", Count: 30, Behaviour: Behaviour{Reconnect: ReconnectPolicy{Kind: PolicyLadder, Steps: []time.Duration{time.Second}}}},
			{Name: "proxied", Count: 10, Proxy: true},
		},
		Phases:   []Phase{{Kind: PhaseRamp, Rate: 40, Target: 20}, {Kind: PhaseHold, Duration: time.Second}},
		Switches: []Switch{{At: time.Second, Cohort: "direct"}, {At: 2 * time.Second, Cohort: "proxied"}},
	}
	q := p.Part([]int{1})
	if len(q.Cohorts) != 1 || q.Cohorts[0].Name != "proxied" || q.Clients() != 10 {
		t.Fatalf("part cohorts %+v", q.Cohorts)
	}
	if q.Phases[0].Rate != 10 || q.Phases[0].Target != 5 {
		t.Errorf("part ramp %+v, want rate 10 target 5 (a quarter of the clients)", q.Phases[0])
	}
	if len(q.Switches) != 1 || q.Switches[0].Cohort != "proxied" {
		t.Errorf("part switches %+v", q.Switches)
	}
	d := p.Part([]int{0})
	d.Cohorts[0].Behaviour.Reconnect.Steps[0] = time.Minute
	if p.Cohorts[0].Behaviour.Reconnect.Steps[0] != time.Second || p.Phases[0].Rate != 40 {
		t.Error("changing a part changed the plan")
	}
	if all := p.Part([]int{0, 1}); all.Clients() != 40 || all.Phases[0].Rate != 40 {
		t.Errorf("the part of every cohort is not the plan: %+v", all.Phases)
	}
}
