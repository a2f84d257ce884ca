// Package harness runs one load test end to end, as a library: Run takes a Spec (a scenario, or a
// plan against a target) and Options, and returns the run's result.
//
// A run starts its target (the embedded reference gateway, as nodes in child processes or in this
// process, or a ws:// or wss:// URL on any host), probes every address with one connection that
// speaks the target's protocol (naming the setting to check when it does not), puts the chaos
// proxies in front of the cohorts routed through them, splits the plan over as many workers as the
// open-file limit requires (in this process, in spawned worker processes, or on remote agents — one
// controller/agent protocol for all three; remote agents over TLS, or plain HTTP off loopback only
// when allowed and then recorded), runs the fault timeline beside the load (proxy, process and
// container faults, the latter on the containers Options names), scrapes the gateway's metrics
// every second, grades the scenario's SLOs from the merged figures, diagnoses what went wrong
// (reports.Diagnose: client side, between, server side) and assembles the reports.Result. A result
// is returned also when the run failed or was interrupted, so that what was measured can be
// written.
//
// Nothing here prints, exits or reads flags: progress reaches the caller through the callbacks in
// Options (the command line's live display plugs in there), and errors say what went wrong with a
// type the caller can branch on (UsageError for what was asked, anything else for what failed).
//
// Concurrency: Run may be called from several goroutines for separate runs (each has its own
// target, workers and proxies); it calls Options.OnUpdate and Options.OnNote from one goroutine at
// a time. It owns every goroutine and process it starts and has ended them when it returns.
// ServeAgent is the worker side of the same protocol: it runs the jobs a controller (Run, in another
// process) sends.
package harness
