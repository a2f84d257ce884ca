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

// TestChaosTimelineContainers converts every container action, with the reverts durations make,
// and rejects container events that lack their container or network.
func TestChaosTimelineContainers(t *testing.T) {
	src := minimal + `timeline:
  - {at: 1s, action: container-kill, container: node-0, duration: 2s}
  - {at: 2s, action: container-disconnect, container: node-1, network: squall, duration: 1s}
  - {at: 4s, action: container-pause, container: redis, duration: 1s}
  - {at: 4s, action: container-stop, container: node-2}
  - {at: 5s, action: container-start, container: node-2}
  - {at: 6s, action: container-restart, container: node-2}
`
	s, err := Parse("t.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	tl, err := s.ChaosTimeline()
	if err != nil {
		t.Fatal(err)
	}
	net := map[string]string{chaos.ParamNetwork: "squall"}
	want := chaos.Timeline{
		{At: 1 * time.Second, Action: chaos.ActionContainerKill, Target: "node-0"},
		{At: 3 * time.Second, Action: chaos.ActionContainerStart, Target: "node-0"},
		{At: 2 * time.Second, Action: chaos.ActionNetworkDisconnect, Target: "node-1", Params: net},
		{At: 3 * time.Second, Action: chaos.ActionNetworkConnect, Target: "node-1", Params: net},
		{At: 4 * time.Second, Action: chaos.ActionContainerPause, Target: "redis"},
		{At: 5 * time.Second, Action: chaos.ActionContainerResume, Target: "redis"},
		{At: 4 * time.Second, Action: chaos.ActionContainerStop, Target: "node-2"},
		{At: 5 * time.Second, Action: chaos.ActionContainerStart, Target: "node-2"},
		{At: 6 * time.Second, Action: chaos.ActionContainerRestart, Target: "node-2"},
	}
	if !reflect.DeepEqual(tl, want) {
		t.Errorf("timeline\n%+v\nwant\n%+v", tl, want)
	}
	if err := tl.Validate(nil); err != nil {
		t.Errorf("chaos rejects the converted timeline: %v", err)
	}

	_, err = Parse("t.yaml", []byte(minimal+`timeline:
  - {at: 1s, action: container-kill}
  - {at: 1s, action: container-connect, container: node-0}
  - {at: 1s, action: container-resume, container: node-0, network: squall}
`))
	for _, w := range []string{
		"timeline[0].container: missing (the name of the run's container container-kill acts on)",
		"timeline[1].network: missing (the Docker network container-connect acts on)",
		"timeline[2].network: does not apply to container-resume (it reads at or container)",
	} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v\nlacks %q", err, w)
		}
	}
}
