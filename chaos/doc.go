// Package chaos injects faults into a load test: network faults through an
// embedded (or external) Toxiproxy, process faults on gateway nodes, container
// faults on the run's containers, and a fault timeline that schedules them and
// records what happened.
//
// # Network faults
//
// [Embedded] runs Toxiproxy v2 inside the calling process and drives its
// proxy collection directly; [External] drives a Toxiproxy the user runs,
// through its HTTP API. Both implement [Proxies]. A proxy sits in front of an
// upstream address; a cohort of clients dials the proxy's listen address
// instead of the gateway, and toxics added to the proxy act on those clients
// only. EmbeddedOptions.PreserveSourceIP makes the upstream see each
// client's own loopback address rather than the proxy's, which matters to a
// gateway that limits connections per remote IP. Toxiproxy is not free (two extra sockets and six goroutines per
// proxied connection, ~0.1–0.4 ms per round trip): route a cohort through it,
// not a whole run. [MeasureOverhead] measures what it adds on this machine.
//
// # Process faults
//
// [Node] is what a gateway node offers to fault injection: Kill, Restart,
// Pause, Resume, Drain. [ProcessNode] implements it for an operating-system
// process started from an [exec.Cmd].
//
// # Container faults
//
// [Container] is a container of the run that faults act on: stop, start, kill, restart, pause,
// resume, and disconnect from / reconnect to a network (a partition). A [Runner] acts only on the
// containers in its Containers map, by name. Package chaos/dockerchaos implements it for Docker.
//
// # Timeline
//
// A [Timeline] is a list of [Step] values (offset, action, target,
// parameters). [Timeline.Validate] reports every problem at once, each naming
// the step index and field. [Runner.Run] executes the steps at their offsets
// against an injectable [Clock] and returns one [Event] per executed step,
// with its actual time and outcome; Event is the record that goes into the
// run's result.
//
// # Concurrency
//
// Embedded, External and ProcessNode are safe for concurrent use. A Runner
// runs one timeline at a time; its steps run one after another in offset
// order, so a step that blocks (a restart waiting for readiness) delays the
// ones after it, and the recorded actual times show it. Goroutines the
// package starts end with their owner: Run's with Run, ServeAPI's when its
// context ends, a ProcessNode's exit watcher when its process exits (Stop
// ends it), and the proxies' per-connection goroutines (Toxiproxy's) when
// the connection closes, which Disable, DeleteProxy and Close force.
//
// # Logging
//
// Toxiproxy logs through zerolog. Embedded routes those logs to the
// *slog.Logger it is given (nil discards them): Toxiproxy's error level and
// above become slog Warn, everything else Debug, since Toxiproxy logs per
// connection at Info. One toxic (bandwidth) logs through zerolog's global
// logger on a rare interrupt path; only a binary's main may silence that
// (zerolog.SetGlobalLevel), as it is process-wide state.
package chaos
