package chaos

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// Action is what a timeline step does.
type Action string

// Built-in actions. Network actions take a proxy name as Target, process
// actions a node name.
const (
	// ActionAddToxic adds Step.Toxic to the proxy.
	ActionAddToxic Action = "add_toxic"
	// ActionRemoveToxic removes the toxic named Step.Toxic.Name.
	ActionRemoveToxic Action = "remove_toxic"
	// ActionDisableProxy closes every connection on the proxy and refuses
	// new ones.
	ActionDisableProxy Action = "disable_proxy"
	// ActionEnableProxy listens again after ActionDisableProxy.
	ActionEnableProxy Action = "enable_proxy"
	// ActionKill kills the node (SIGKILL).
	ActionKill Action = "kill"
	// ActionRestart stops the node gracefully and starts it again.
	ActionRestart Action = "restart"
	// ActionPause freezes the node (SIGSTOP).
	ActionPause Action = "pause"
	// ActionResume unfreezes the node (SIGCONT).
	ActionResume Action = "resume"
	// ActionDrain asks the node to drain (SIGTERM).
	ActionDrain Action = "drain"
)

// Container actions take a container name as Target (one of Runner.Containers); the network
// actions also take Params[ParamNetwork].
const (
	// ActionContainerStop stops the container gracefully (SIGTERM, then SIGKILL).
	ActionContainerStop Action = "container_stop"
	// ActionContainerStart starts a stopped or killed container again.
	ActionContainerStart Action = "container_start"
	// ActionContainerKill kills the container (SIGKILL).
	ActionContainerKill Action = "container_kill"
	// ActionContainerRestart stops the container gracefully and starts it again.
	ActionContainerRestart Action = "container_restart"
	// ActionContainerPause freezes the container.
	ActionContainerPause Action = "container_pause"
	// ActionContainerResume unfreezes it.
	ActionContainerResume Action = "container_resume"
	// ActionNetworkDisconnect takes the container off a network (a partition).
	ActionNetworkDisconnect Action = "network_disconnect"
	// ActionNetworkConnect puts it back, with the address and aliases it had.
	ActionNetworkConnect Action = "network_connect"
)

type actionKind int

const (
	kindProxy actionKind = iota + 1
	kindNode
	kindContainer
	kindCustom
)

var builtinActions = map[Action]actionKind{
	ActionAddToxic: kindProxy, ActionRemoveToxic: kindProxy,
	ActionDisableProxy: kindProxy, ActionEnableProxy: kindProxy,
	ActionKill: kindNode, ActionRestart: kindNode, ActionPause: kindNode,
	ActionResume: kindNode, ActionDrain: kindNode,
	ActionContainerStop: kindContainer, ActionContainerStart: kindContainer, ActionContainerKill: kindContainer,
	ActionContainerRestart: kindContainer, ActionContainerPause: kindContainer, ActionContainerResume: kindContainer,
	ActionNetworkDisconnect: kindContainer, ActionNetworkConnect: kindContainer,
}

// takesNetwork reports whether a container action needs Params[ParamNetwork].
func takesNetwork(a Action) bool { return a == ActionNetworkDisconnect || a == ActionNetworkConnect }

// Step is one scheduled fault.
type Step struct {
	// At is the offset from the timeline's start. Must not be negative.
	At time.Duration
	// Action is what to do. Required.
	Action Action
	// Target is the proxy (network actions), node (process actions) or
	// container (container actions) it acts on; custom actions may use it as
	// they like. Required for built-in actions.
	Target string
	// Toxic is the toxic to add (add_toxic) or, by Name, to remove
	// (remove_toxic). Must be zero for other actions.
	Toxic Toxic
	// Params are parameters of a custom action, or the network of
	// network_disconnect and network_connect (ParamNetwork). Must be empty
	// for other built-in actions.
	Params map[string]string
}

// Timeline is a list of steps. Order in the list does not matter: steps run
// in offset order, steps with equal offsets in list order.
type Timeline []Step

// Handler runs a custom action (one not built in, such as switching a
// cohort's behaviour) and declares its required parameters.
type Handler struct {
	// Params lists the Step.Params keys the action requires.
	Params []string
	// Run performs the step. It may be nil when the handler is only used to
	// validate.
	Run func(ctx context.Context, s Step) error
}

// Problem is one thing wrong with a timeline step.
type Problem struct {
	Index   int    // the step's position in the timeline as written
	Field   string // e.g. "at", "toxic.attributes.latency", "params.cohort"
	Message string
}

func (p Problem) Error() string {
	return fmt.Sprintf("timeline[%d].%s: %s", p.Index, p.Field, p.Message)
}

// TimelineError lists every problem of a timeline, in step order.
type TimelineError struct {
	Problems []Problem
}

func (e *TimelineError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// Validate checks tl up front and reports every problem at once as a
// *TimelineError: negative offsets, unknown actions, missing targets,
// invalid toxics, parameters an action does not take, missing parameters
// of custom actions (declared in custom, which may be nil), and toxics
// added twice or removed while not present. It does not check that targets
// exist; Runner.Run does that.
func (tl Timeline) Validate(custom map[Action]Handler) error {
	var probs []Problem
	add := func(i int, field, format string, args ...any) {
		probs = append(probs, Problem{Index: i, Field: field, Message: fmt.Sprintf(format, args...)})
	}
	for i, s := range tl {
		if s.At < 0 {
			add(i, "at", "%v is negative", s.At)
		}
		kind, ok := builtinActions[s.Action]
		if !ok {
			if _, isCustom := custom[s.Action]; isCustom {
				kind = kindCustom
			}
		}
		switch {
		case s.Action == "":
			add(i, "action", "missing (want one of %s)", actionList(custom))
			continue
		case kind == 0:
			add(i, "action", "unknown action %q (want one of %s)", s.Action, actionList(custom))
			continue
		}
		switch kind {
		case kindProxy, kindNode, kindContainer:
			if s.Target == "" {
				what := map[actionKind]string{kindProxy: "proxy", kindNode: "node", kindContainer: "container"}[kind]
				add(i, "target", "missing (the %s %s acts on)", what, s.Action)
			}
			for _, k := range sortedKeys(s.Params) {
				if k == ParamNetwork && takesNetwork(s.Action) {
					continue
				}
				add(i, "params."+k, "not a parameter of %s", s.Action)
			}
			if takesNetwork(s.Action) && s.Params[ParamNetwork] == "" {
				add(i, "params."+ParamNetwork, "missing (the network %s acts on)", s.Action)
			}
		case kindCustom:
			for _, k := range custom[s.Action].Params {
				if _, ok := s.Params[k]; !ok {
					add(i, "params."+k, "missing (required by %s)", s.Action)
				}
			}
		}
		switch s.Action {
		case ActionAddToxic:
			for _, fe := range s.Toxic.problems() {
				add(i, "toxic."+fe.field, "%s", fe.msg)
			}
		case ActionRemoveToxic:
			if s.Toxic.Name == "" {
				add(i, "toxic.name", "missing (the toxic to remove)")
			}
			if s.Toxic.Type != "" || s.Toxic.Stream != "" || s.Toxic.Toxicity != 0 || len(s.Toxic.Attributes) > 0 {
				add(i, "toxic", "remove_toxic takes only the toxic's name")
			}
		default:
			if !toxicIsZero(s.Toxic) {
				add(i, "toxic", "not a parameter of %s", s.Action)
			}
		}
	}
	probs = append(probs, toxicSequenceProblems(tl)...)
	if len(probs) == 0 {
		return nil
	}
	sortProblems(probs)
	return &TimelineError{Problems: probs}
}

func sortProblems(probs []Problem) {
	slices.SortStableFunc(probs, func(a, b Problem) int { return cmp.Compare(a.Index, b.Index) })
}

// toxicSequenceProblems walks the steps in execution order and reports a
// toxic added while one of that name is on the proxy, or removed while
// none is.
func toxicSequenceProblems(tl Timeline) []Problem {
	type key struct{ proxy, toxic string }
	active := map[key]int{} // → index of the step that added it
	var probs []Problem
	for _, i := range executionOrder(tl) {
		s := tl[i]
		if s.Toxic.Name == "" || s.Target == "" {
			continue
		}
		k := key{s.Target, s.Toxic.Name}
		switch s.Action {
		case ActionAddToxic:
			if j, ok := active[k]; ok {
				probs = append(probs, Problem{i, "toxic.name", fmt.Sprintf(
					"toxic %q is already on proxy %q (added by timeline[%d])", k.toxic, k.proxy, j)})
				continue
			}
			active[k] = i
		case ActionRemoveToxic:
			if _, ok := active[k]; !ok {
				probs = append(probs, Problem{i, "toxic.name", fmt.Sprintf(
					"no toxic %q on proxy %q at %v", k.toxic, k.proxy, s.At)})
				continue
			}
			delete(active, k)
		}
	}
	return probs
}

// executionOrder returns the step indexes sorted by offset, stable.
func executionOrder(tl Timeline) []int {
	idx := make([]int, len(tl))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(tl[a].At, tl[b].At) })
	return idx
}

func toxicIsZero(t Toxic) bool {
	return t.Name == "" && t.Type == "" && t.Stream == "" && t.Toxicity == 0 && len(t.Attributes) == 0
}

func actionList(custom map[Action]Handler) string {
	names := make([]string, 0, len(builtinActions)+len(custom))
	for a := range builtinActions {
		names = append(names, string(a))
	}
	for a := range custom {
		if _, dup := builtinActions[a]; !dup {
			names = append(names, string(a))
		}
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
