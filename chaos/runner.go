package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"time"
)

// Runner executes timelines. Configure it, then call Run; a Runner runs one
// timeline at a time.
type Runner struct {
	// Proxies runs the network actions. Nil means a timeline with network
	// actions is rejected.
	Proxies Proxies
	// Nodes maps node names (Step.Target) to the nodes process actions act
	// on.
	Nodes map[string]Node
	// Containers maps container names (Step.Target) to the containers
	// container actions act on: only those the run started.
	Containers map[string]Container
	// Handlers runs custom actions. A handler named like a built-in action
	// is ignored.
	Handlers map[Action]Handler
	// Clock schedules the steps. Nil means the real clock.
	Clock Clock
	// StepTimeout bounds each step. Zero means only Run's context bounds it.
	StepTimeout time.Duration
	// OnEvent, if set, is called with each event as soon as its step has
	// run, on Run's goroutine (keep it quick: it delays the next step).
	OnEvent func(Event)
	// Logger gets one line per step (Info, Warn when it failed). Nil
	// discards.
	Logger *slog.Logger
}

// Event records one executed step; the run's result keeps it as a fault event.
type Event struct {
	// Index is the step's position in the timeline as written.
	Index int
	// At is the step's planned offset from the timeline's start.
	At time.Duration
	// Offset is the actual offset at which the step began.
	Offset time.Duration
	// Time is the wall-clock (Runner.Clock) time at which it began.
	Time time.Time
	// Took is how long the action took.
	Took   time.Duration
	Action Action
	Target string
	// Params are the step's parameters: the toxic's fields and attributes
	// for toxic actions ("toxic", "type", "stream", "toxicity", then the
	// attribute names), Step.Params for custom ones.
	Params map[string]string
	// Error is the action's error, empty when it succeeded.
	Error string
}

// eventJSON is Event's JSON form: durations in seconds, named so.
type eventJSON struct {
	Index         int               `json:"index"`
	AtSeconds     float64           `json:"at_seconds"`
	OffsetSeconds float64           `json:"offset_seconds"`
	Time          time.Time         `json:"time"`
	TookSeconds   float64           `json:"took_seconds"`
	Action        Action            `json:"action"`
	Target        string            `json:"target,omitempty"`
	Params        map[string]string `json:"params,omitempty"`
	Error         string            `json:"error,omitempty"`
}

// MarshalJSON writes durations as float seconds (at_seconds,
// offset_seconds, took_seconds).
func (e Event) MarshalJSON() ([]byte, error) {
	return json.Marshal(eventJSON{
		Index: e.Index, AtSeconds: e.At.Seconds(), OffsetSeconds: e.Offset.Seconds(),
		Time: e.Time, TookSeconds: e.Took.Seconds(), Action: e.Action, Target: e.Target,
		Params: e.Params, Error: e.Error,
	})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (e *Event) UnmarshalJSON(data []byte) error {
	var j eventJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	// Rounded to the nanosecond, not truncated: 1.5012 s is 1501199999.9999999 ns in binary.
	sec := func(s float64) time.Duration { return time.Duration(math.Round(s * float64(time.Second))) }
	*e = Event{
		Index: j.Index, At: sec(j.AtSeconds), Offset: sec(j.OffsetSeconds), Time: j.Time,
		Took: sec(j.TookSeconds), Action: j.Action, Target: j.Target, Params: j.Params, Error: j.Error,
	}
	return nil
}

// Validate checks tl as Timeline.Validate does with r's handlers, and that
// every target is known: node names must be in r.Nodes and network actions
// need r.Proxies.
func (r *Runner) Validate(tl Timeline) error {
	err := tl.Validate(r.Handlers)
	var te *TimelineError
	if err != nil && !errors.As(err, &te) {
		return err
	}
	if te == nil {
		te = &TimelineError{}
	}
	for i, s := range tl {
		switch builtinActions[s.Action] {
		case kindProxy:
			if r.Proxies == nil {
				te.Problems = append(te.Problems, Problem{i, "action", fmt.Sprintf("%s needs a proxy, and none is configured", s.Action)})
			}
		case kindNode:
			if _, ok := r.Nodes[s.Target]; !ok && s.Target != "" {
				te.Problems = append(te.Problems, Problem{i, "target", fmt.Sprintf("unknown node %q (have %v)", s.Target, sortedKeys(r.Nodes))})
			}
		case kindContainer:
			if _, ok := r.Containers[s.Target]; !ok && s.Target != "" {
				te.Problems = append(te.Problems, Problem{i, "target", fmt.Sprintf(
					"unknown container %q (container faults act only on the run's own containers: have %v)", s.Target, sortedKeys(r.Containers))})
			}
		}
	}
	if len(te.Problems) == 0 {
		return nil
	}
	sortProblems(te.Problems)
	return te
}

// Run validates tl (see Runner.Validate) and, if it is valid, executes its
// steps at start+At, in offset order, returning one Event per executed
// step. A zero start means now. A failing step is recorded in its Event and
// the run goes on. Run returns early with the events so far and the
// context's cause when ctx ends.
func (r *Runner) Run(ctx context.Context, start time.Time, tl Timeline) ([]Event, error) {
	if err := r.Validate(tl); err != nil {
		return nil, err
	}
	clock := r.Clock
	if clock == nil {
		clock = realClock{}
	}
	log := r.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if start.IsZero() {
		start = clock.Now()
	}
	events := make([]Event, 0, len(tl))
	for _, i := range executionOrder(tl) {
		s := tl[i]
		if err := ctx.Err(); err != nil {
			return events, context.Cause(ctx)
		}
		if wait := start.Add(s.At).Sub(clock.Now()); wait > 0 {
			select {
			case <-clock.After(wait):
			case <-ctx.Done():
				return events, context.Cause(ctx)
			}
		}
		began := clock.Now()
		err := r.do(ctx, s)
		ev := Event{
			Index: i, At: s.At, Offset: began.Sub(start), Time: began,
			Took: clock.Now().Sub(began), Action: s.Action, Target: s.Target, Params: stepParams(s),
		}
		if err != nil {
			ev.Error = err.Error()
			log.Warn("chaos step failed", "index", i, "action", s.Action, "target", s.Target, "err", err)
		} else {
			log.Info("chaos step", "index", i, "action", s.Action, "target", s.Target)
		}
		events = append(events, ev)
		if r.OnEvent != nil {
			r.OnEvent(ev)
		}
	}
	return events, nil
}

func (r *Runner) do(ctx context.Context, s Step) error {
	if r.StepTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.StepTimeout)
		defer cancel()
	}
	switch s.Action {
	case ActionAddToxic:
		return r.Proxies.AddToxic(ctx, s.Target, s.Toxic)
	case ActionRemoveToxic:
		return r.Proxies.RemoveToxic(ctx, s.Target, s.Toxic.Name)
	case ActionDisableProxy:
		return r.Proxies.Disable(ctx, s.Target)
	case ActionEnableProxy:
		return r.Proxies.Enable(ctx, s.Target)
	}
	if n, ok := r.Nodes[s.Target]; ok {
		switch s.Action {
		case ActionKill:
			return n.Kill(ctx)
		case ActionRestart:
			return n.Restart(ctx)
		case ActionPause:
			return n.Pause(ctx)
		case ActionResume:
			return n.Resume(ctx)
		case ActionDrain:
			return n.Drain(ctx)
		}
	}
	if c, ok := r.Containers[s.Target]; ok && builtinActions[s.Action] == kindContainer {
		return doContainer(ctx, c, s)
	}
	h, ok := r.Handlers[s.Action]
	if !ok || h.Run == nil {
		return fmt.Errorf("chaos: no handler for action %q", s.Action)
	}
	return h.Run(ctx, s)
}

func doContainer(ctx context.Context, c Container, s Step) error {
	switch s.Action {
	case ActionContainerStop:
		return c.Stop(ctx)
	case ActionContainerStart:
		return c.Start(ctx)
	case ActionContainerKill:
		return c.Kill(ctx)
	case ActionContainerRestart:
		return c.Restart(ctx)
	case ActionContainerPause:
		return c.Pause(ctx)
	case ActionContainerResume:
		return c.Resume(ctx)
	case ActionNetworkDisconnect:
		return c.Disconnect(ctx, s.Params[ParamNetwork])
	case ActionNetworkConnect:
		return c.Connect(ctx, s.Params[ParamNetwork])
	}
	return fmt.Errorf("chaos: %q is not a container action", s.Action)
}

// stepParams flattens a step's parameters for its Event.
func stepParams(s Step) map[string]string {
	switch s.Action {
	case ActionAddToxic:
		t := s.Toxic.withDefaults()
		p := map[string]string{
			"toxic": t.Name, "type": string(t.Type), "stream": string(t.Stream),
			"toxicity": strconv.FormatFloat(t.Toxicity, 'g', -1, 64),
		}
		for k, v := range t.Attributes {
			p[k] = strconv.FormatInt(v, 10)
		}
		return p
	case ActionRemoveToxic:
		return map[string]string{"toxic": s.Toxic.Name}
	}
	if len(s.Params) == 0 {
		return nil
	}
	p := make(map[string]string, len(s.Params))
	for k, v := range s.Params {
		p[k] = v
	}
	return p
}
