package scenarios

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/squall-dev/squall/chaos"
)

func TestChaosTimeline(t *testing.T) {
	s, err := Load("escalation-91847.yaml", WithTimeScale(0.5))
	if err != nil {
		t.Fatal(err)
	}
	tl, err := s.ChaosTimeline()
	if err != nil {
		t.Fatal(err)
	}
	want := chaos.Timeline{
		{At: 30 * time.Second, Action: chaos.ActionDisableProxy, Target: "office-net"},
		{At: 32500 * time.Millisecond, Action: chaos.ActionEnableProxy, Target: "office-net"},
		{At: 50 * time.Second, Action: chaos.ActionAddToxic, Target: "office-net", Toxic: chaos.Toxic{
			Name: "office-jitter", Type: chaos.Latency, Stream: chaos.Downstream, Toxicity: 1,
			Attributes: map[string]int64{"latency": 50, "jitter": 25}}},
		{At: 60 * time.Second, Action: chaos.ActionRemoveToxic, Target: "office-net", Toxic: chaos.Toxic{Name: "office-jitter"}},
	}
	if !reflect.DeepEqual(tl, want) {
		t.Errorf("timeline\n%+v\nwant\n%+v", tl, want)
	}
	if err := tl.Validate(nil); err != nil {
		t.Errorf("chaos rejects the converted timeline: %v", err)
	}

	src := strings.Replace(minimal, "count: 10\n", "count: 10\n    proxy: edge\n", 1) + `target: {nodes: 2}
timeline:
  - {at: 1s, action: node-pause, node: 1, duration: 2s}
  - {at: 2s, action: behaviour, cohort: users, behaviour: {reconnect: constant}}
  - {at: 3s, action: toxic-add, type: latency, attributes: {latency: 1ms}}
`
	s, err = Parse("t.yaml", []byte(src), WithTimeScale(0.5))
	if err != nil {
		t.Fatal(err)
	}
	tl, err = s.ChaosTimeline()
	if len(tl) != 4 || !reflect.DeepEqual(tl[0], chaos.Step{At: 500 * time.Millisecond, Action: chaos.ActionPause, Target: "node-1"}) ||
		tl[1].Action != chaos.ActionResume || tl[1].At != 1500*time.Millisecond ||
		tl[2].Action != ChaosBehaviour || tl[2].Params["cohort"] != "users" || tl[2].Params["event"] != "1" {
		t.Errorf("timeline %+v", tl)
	}
	if err == nil || !strings.Contains(err.Error(), "timeline[2]: attributes.latency: 500µs is below Toxiproxy's unit (ms)") {
		t.Errorf("a latency scaled below a millisecond: %v", err)
	}
}
