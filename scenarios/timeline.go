package scenarios

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/squall-dev/squall/chaos"
)

// ChaosBehaviour is the custom chaos action a behaviour switch becomes. Its step carries the cohort
// in Params["cohort"] and the index of the scenario's timeline event in Params["event"]; the handler
// the runner registers reads the switch from Scenario.Timeline[event].Behaviour.
const ChaosBehaviour chaos.Action = "behaviour"

// NodeName is the chaos target name of embedded gateway node i (loadgen names its nodes so).
func NodeName(i int) string { return "node-" + strconv.Itoa(i) }

// ChaosTimeline converts the timeline into chaos steps: proxies by name, nodes by NodeName, toxic
// attributes in Toxiproxy's units, and an event with a duration as two steps (the action and its
// revert). It fails when a time-scaled toxic attribute no longer fits Toxiproxy's units (a latency
// scaled below one millisecond becomes 0).
func (s *Scenario) ChaosTimeline() (chaos.Timeline, error) {
	var tl chaos.Timeline
	var errs []error
	for i, e := range s.Timeline {
		step := chaos.Step{At: e.At, Target: e.Proxy}
		var revert chaos.Action
		switch e.Action {
		case ActionToxicAdd:
			step.Action, revert = chaos.ActionAddToxic, chaos.ActionRemoveToxic
			t, err := chaosToxic(e)
			if err != nil {
				errs = append(errs, fmt.Errorf("timeline[%d]: %w", i, err))
			}
			step.Toxic = t
		case ActionToxicRemove:
			step.Action = chaos.ActionRemoveToxic
			step.Toxic = chaos.Toxic{Name: e.Toxic}
		case ActionProxyDisable:
			step.Action, revert = chaos.ActionDisableProxy, chaos.ActionEnableProxy
		case ActionProxyEnable:
			step.Action = chaos.ActionEnableProxy
		case ActionNodeKill, ActionNodeRestart, ActionNodePause, ActionNodeResume, ActionNodeDrain:
			step.Target = NodeName(e.Node)
			step.Action = map[Action]chaos.Action{
				ActionNodeKill: chaos.ActionKill, ActionNodeRestart: chaos.ActionRestart,
				ActionNodePause: chaos.ActionPause, ActionNodeResume: chaos.ActionResume, ActionNodeDrain: chaos.ActionDrain,
			}[e.Action]
			if e.Action == ActionNodePause {
				revert = chaos.ActionResume
			}
		case ActionContainerStop, ActionContainerStart, ActionContainerKill, ActionContainerRestart, ActionContainerPause,
			ActionContainerResume, ActionContainerDisconnect, ActionContainerConnect:
			step.Target = e.Container
			step.Action = containerActions[e.Action]
			revert = containerReverts[e.Action]
			if e.Network != "" {
				step.Params = map[string]string{chaos.ParamNetwork: e.Network}
			}
		case ActionBehaviour:
			step.Action, step.Target = ChaosBehaviour, ""
			step.Params = map[string]string{"cohort": e.Cohort, "event": strconv.Itoa(i)}
		default:
			errs = append(errs, fmt.Errorf("timeline[%d]: unknown action %q", i, e.Action))
			continue
		}
		tl = append(tl, step)
		if e.Duration > 0 && revert != "" {
			back := chaos.Step{At: e.At + e.Duration, Action: revert, Target: step.Target, Params: step.Params}
			if revert == chaos.ActionRemoveToxic {
				back.Toxic = chaos.Toxic{Name: step.Toxic.Name}
			}
			tl = append(tl, back)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return tl, fmt.Errorf("scenarios: %s: %w", s.Name, err)
	}
	return tl, nil
}

// containerActions maps the scenario's container actions onto chaos's.
var containerActions = map[Action]chaos.Action{
	ActionContainerStop: chaos.ActionContainerStop, ActionContainerStart: chaos.ActionContainerStart,
	ActionContainerKill: chaos.ActionContainerKill, ActionContainerRestart: chaos.ActionContainerRestart,
	ActionContainerPause: chaos.ActionContainerPause, ActionContainerResume: chaos.ActionContainerResume,
	ActionContainerDisconnect: chaos.ActionNetworkDisconnect, ActionContainerConnect: chaos.ActionNetworkConnect,
}

// containerReverts is what a container action's duration ends with.
var containerReverts = map[Action]chaos.Action{
	ActionContainerStop: chaos.ActionContainerStart, ActionContainerKill: chaos.ActionContainerStart,
	ActionContainerPause: chaos.ActionContainerResume, ActionContainerDisconnect: chaos.ActionNetworkConnect,
}

// chaosToxic converts a toxic-add event's toxic.
func chaosToxic(e Event) (chaos.Toxic, error) {
	t := chaos.Toxic{Name: e.Toxic, Type: chaos.ToxicType(e.Type), Stream: chaos.Stream(e.Stream), Toxicity: e.Toxicity,
		Attributes: map[string]int64{}}
	a := e.Attributes
	values := map[string]any{
		"latency": a.Latency, "jitter": a.Jitter, "rate": a.Rate, "delay": a.Delay, "timeout": a.Timeout,
		"bytes": a.Bytes, "average_size": a.AverageSize, "size_variation": a.SizeVariation,
	}
	var errs []error
	for _, spec := range t.Type.Attributes() {
		switch v := values[spec.Name].(type) {
		case int:
			t.Attributes[spec.Name] = int64(v)
		case time.Duration:
			n, err := spec.FromDuration(v)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if v > 0 && n == 0 {
				errs = append(errs, fmt.Errorf("attributes.%s: %v is below Toxiproxy's unit (%s) once time-scaled", spec.Name, v, spec.Unit))
			}
			t.Attributes[spec.Name] = n
		}
	}
	if err := t.Validate(); err != nil {
		errs = append(errs, err)
	}
	return t, errors.Join(errs...)
}
