// Package loadgen is squall's load generator: simulated browser tabs, the protocols they speak
// (one file each behind Protocol: squall, the reference gateway's; generic, frames and matchers
// declared in the scenario; centrifugo, Centrifugo v6's client protocol; socketio, Socket.IO v4
// over WebSocket), the transport tiers of
// the squall protocol (WebSocket, SSE, long polling, the ladder between them), payload stamps that
// measure delivery on any relay gateway, reconnect policies, exits and misbehaviours, plans
// (cohorts, phases, load model) and the in-process runner RunLocal. A run's Target is a plain value
// — endpoints, the protocol, where tokens come from and go, TLS and headers — so that a plan part
// and its target travel to workers as JSON (loadgen/agent).
// Starting a gateway is not this package's business: loadgen/embedded starts the reference gateway,
// and the harness package puts a whole run together.
//
// # Clients
//
// A simulated client is one tab: it dials from a source address of its cohort's 127.0.0.0/8 range
// with a minted JWT and, speaking the squall protocol, waits for welcome, joins its rooms (or resumes
// its session after a drop), sends broadcasts at its rate, answers pings, runs an application
// heartbeat, and when the connection drops follows its ReconnectPolicy — never after a 1000 close,
// never before a retry_after_ms hint.
// Every delivered broadcast is checked against its room's roomSeq (order, gaps, duplicates); every
// broadcast the server acknowledged is checked, once the run is quiet, to have reached every member
// that stayed in the room (acknowledged-but-undelivered). Presence convergence runs from a tab's
// exit to the moment every observer saw the user's leave.
//
// # Figures per cohort, tab and user
//
// Every client figure is recorded twice: for the run and under the client's cohort
// (stats.CohortKey), so a cohort's figures travel and merge with the rest. Besides latencies and
// counters, the run records each tab's reconnect attempts when it ends
// (HistReconnectAttemptsPerClient), each user's peak of connections held at once (HistConnsPerUser,
// welcome to close, navigate overlaps included), false disconnects (CtrFalseDisconnects: a
// well-behaved tab cut for a heartbeat reason), the time the server took to close the connection of
// a vanished tab (HistZombieCleanup; tabs never cleaned are counted with their age), and the age
// of departed users still present to an observer when ramp-down began (HistGhostAge).
//
// # Behaviour switches
//
// Plan.Switches replace a cohort's behaviour at a time from the run's start, in every part of a
// split plan (the parts share the start instant). See Switch for what takes effect when.
//
// # Honest latency
//
// Every timed action has an intended time from the schedule. Broadcast latency is measured from the
// intended send time, so a stalled generator shows up as latency (no coordinated omission); how late
// each action ran goes into the schedule-lag histogram, and a run whose lag p99 exceeds
// Plan.ScheduleLagBound is marked unreliable.
//
// # Concurrency and memory
//
// How clients read their WebSockets is Plan.ClientIO. With ClientIOEpoll (the default) an open
// connection has no goroutine at all. A plain WebSocket to an IP address is opened by the run's
// epoll loops themselves (dial_poller.go: a non-blocking connect, one write of the upgrade
// request, the 101 read as it arrives and validated as RFC 6455 asks, no net/http), so that no
// goroutine waits for the attempt either; another ws:// attempt is upgraded by the same lean
// handshake on a goroutine (dialUpgrade) and its socket handed to the loops. The loops
// (internal/netpoll) parse a connection's frames as they arrive
// (internal/wsframe) and hand each message to the client on the loop's goroutine; writes go to the socket without blocking (a
// bounded queue holds what the socket does not take). A vanished tab's socket stays on the loop
// with reading paused, watched for the server's close. With ClientIOGoroutine (and for wss://
// targets, whose TLS only a blocking reader can drive) a client has one goroutine: the reader of
// its connection, or, once it vanished, a watcher parked on its socket's readiness that reads
// nothing. A dial that is not on the loops runs on a goroutine that ends once the connection is
// handed over, and at most maxDialsInFlight attempts are in flight per process, wherever they run
// (a ramp waits for a slot). Sends, heartbeats, pings, reconnect delays and exits of every client
// are entries in a few shared scheduler heaps, each served by one goroutine and one timer; there
// are no per-client timers, and periodic actions are planned on a grid of the wall clock shared by
// every process (sched.go), so that a held population's timers wake the processes in batches.
// Writes to a connection are serialised by the client's write mutex; client state by its state
// mutex; room trackers by their own mutex, always taken before a client's. Read buffers, decoded
// frames and write buffers are pooled or shared, so an idle client holds no message memory (see
// docs/bench.md for the bytes per idle client).
//
// RunLocal owns every goroutine it starts and returns only after all of them ended.
package loadgen
