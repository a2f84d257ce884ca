package harness

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/squall-dev/squall/chaos"
	"github.com/squall-dev/squall/reports"
)

// faults runs a scenario's fault timeline beside the load: start it at the run's start instant,
// stop it when the load is over. Its goroutine is owned by start and ended by stop.
type faults struct {
	runner *chaos.Runner
	tl     chaos.Timeline

	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	events []chaos.Event
	err    error
}

// start runs the timeline from startAt; note is told about each step as it runs.
func (fl *faults) start(ctx context.Context, startAt time.Time, note func(string)) {
	ctx, fl.cancel = context.WithCancel(ctx)
	fl.done = make(chan struct{})
	fl.runner.OnEvent = func(ev chaos.Event) {
		if note != nil {
			note(fmt.Sprintf("fault at +%.1fs of the plan: %s", ev.Offset.Seconds(), faultText(ev)))
		}
	}
	go func() {
		defer close(fl.done)
		evs, err := fl.runner.Run(ctx, startAt, fl.tl)
		fl.mu.Lock()
		fl.events, fl.err = evs, err
		fl.mu.Unlock()
	}()
}

// stop ends the timeline (steps not yet run are dropped) and returns the steps that ran as result
// events.
func (fl *faults) stop() []reports.Event {
	if fl.cancel == nil {
		return nil
	}
	fl.cancel()
	<-fl.done
	fl.mu.Lock()
	defer fl.mu.Unlock()
	out := make([]reports.Event, 0, len(fl.events))
	for i := range fl.events {
		ev := fl.events[i]
		f := reports.FaultFrom(ev)
		out = append(out, reports.Event{At: ev.Time, Kind: reports.EventFault, Message: faultText(ev), Fault: &f})
	}
	return out
}

// faultText is one line about a fault step: action, target, toxic and outcome.
func faultText(ev chaos.Event) string {
	var b strings.Builder
	b.WriteString(string(ev.Action))
	if t := ev.Params["toxic"]; t != "" {
		b.WriteString(" " + t)
		if typ := ev.Params["type"]; typ != "" && typ != t {
			b.WriteString(" (" + typ + ")")
		}
	}
	if ev.Target != "" {
		b.WriteString(" on " + ev.Target)
	}
	if ev.Error != "" {
		b.WriteString(": failed: " + ev.Error)
	}
	return b.String()
}
