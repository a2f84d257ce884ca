package reports

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/squall-dev/squall/loadgen/stats"
)

// SchemaVersion is the version of the result.json schema this package writes (see the package
// documentation). ReadJSON reads it and every earlier one, and refuses a newer one.
const SchemaVersion = 2

// FileName is the conventional name of a result file in a run's output directory.
const FileName = "result.json"

// Stop reasons.
const (
	StopCompleted   = "completed"    // the plan ran to its end
	StopInterrupted = "interrupted"  // the user stopped it (Ctrl-C, SIGTERM)
	StopFailed      = "failed"       // the harness failed (see Error)
	StopAllLost     = "workers_lost" // every worker died
)

// Worker statuses.
const (
	WorkerOK     = "ok"     // ran its part to the end
	WorkerLost   = "lost"   // died or stopped answering; its last snapshot is kept
	WorkerFailed = "failed" // reported an error
)

// Worker kinds: what ran a shard of the plan.
const (
	WorkerAgent     = "agent"      // an agent the run was given (loadgen agent, on this machine or another)
	WorkerSpawned   = "spawned"    // a local worker process the run started
	WorkerInProcess = "in-process" // the controller's own process
)

// Result is everything a run produced.
type Result struct {
	// Schema is the schema version the value follows: SchemaVersion (ReadJSON converts older files).
	Schema int    `json:"schema"`
	Tool   string `json:"tool"` // "loadgen" and its version
	Name   string `json:"name"`

	// Scenario names the scenario file the run came from (nil for a plan given on the command line).
	Scenario *Scenario `json:"scenario,omitempty"`
	// Plan is the plan that ran, as the load generator serialised it (its shape is loadgen.Plan's,
	// not part of this schema).
	Plan   json.RawMessage `json:"plan,omitempty"`
	Target Target          `json:"target"`
	Env    Environment     `json:"environment"`

	Started    time.Time     `json:"started"`
	Ended      time.Time     `json:"ended"`
	Duration   time.Duration `json:"duration_ns"`
	StopReason string        `json:"stop_reason"`
	Error      string        `json:"error,omitempty"` // why the harness failed, one line

	Phases []Phase `json:"phases,omitempty"`
	Events []Event `json:"events,omitempty"`

	// Stats are the merged histograms, counters and gauges of every worker.
	Stats Stats `json:"stats"`
	// Series is the merged one-second time series.
	Series Series `json:"series,omitempty"`
	// Telemetry is what the run scraped from the target's /metrics.
	Telemetry Telemetry `json:"telemetry"`
	// ProxyOverhead is what the chaos proxy itself (no toxics) added to a loopback round trip,
	// measured just before the run, when cohorts were routed through one: latencies of proxied
	// cohorts include it.
	ProxyOverhead *ProxyOverhead `json:"proxy_overhead,omitempty"`
	Workers       []Worker       `json:"workers,omitempty"`

	// Reliable is false when the generator itself was saturated (schedule-lag p99 above the
	// plan's bound) or lost workers; UnreliableReason says why.
	Reliable         bool   `json:"reliable"`
	UnreliableReason string `json:"unreliable_reason,omitempty"`

	SLOs []SLOVerdict `json:"slos,omitempty"`

	// StepRamp is the step-by-step grading and the knee of a step-ramp scenario (nil for any other
	// run).
	StepRamp *StepRamp `json:"step_ramp,omitempty"`
	// Diagnosis classifies what went wrong, with the evidence (nil when none was made: results
	// written before diagnoses existed).
	Diagnosis *Diagnosis `json:"diagnosis,omitempty"`
}

// Target describes what the run was aimed at.
type Target struct {
	Kind       string   `json:"kind"` // "embedded", "url", "generic"
	URLs       []string `json:"urls,omitempty"`
	MetricURLs []string `json:"metric_urls,omitempty"`
	Nodes      int      `json:"nodes,omitempty"`
	// OwnProcess is set when the gateway ran in processes of its own (a URL, or embedded nodes
	// started as processes): the resident memory its telemetry reports is the gateway's alone.
	// When it ran inside the load generator's process, memory figures include the generator.
	OwnProcess bool `json:"own_process,omitempty"`
}

// Phase is one phase of the plan as it ran. The result's phases carry its name and times; a
// worker's summary also what the plan asked of that worker in it.
type Phase struct {
	Name string `json:"name"`
	// Kind is "ramp", "hold" or "ramp-down".
	Kind string `json:"kind,omitempty"`
	// RatePerSecond is connections (ramp) or exits (ramp-down) per second; 0 means all at once.
	RatePerSecond float64 `json:"rate_per_second,omitempty"`
	// TargetClients is, for a ramp, the clients connected at its end (0 means all).
	TargetClients int `json:"target_clients,omitempty"`
	// Duration is the planned length of a hold (or of an open-model ramp).
	Duration time.Duration `json:"duration_ns,omitempty"`
	Start    time.Time     `json:"start"`
	End      time.Time     `json:"end,omitzero"`
}

// Event kinds written by the run.
const (
	EventPhase = "phase" // a phase of the plan began (Message: its name)
	EventFault = "fault" // a step of the fault timeline ran (Fault: what, when, how it went)
	// EventWarning is something about how the run was carried out that its reader must know (an
	// agent spoken to in plain HTTP off loopback).
	EventWarning = "warning"
)

// Event is something that happened during the run (phase changes, faults, lost workers).
type Event struct {
	At      time.Time `json:"at"`
	Kind    string    `json:"kind"`
	Message string    `json:"message"`
	Worker  int       `json:"worker,omitempty"`
	// Fault is the timeline step's record for Kind EventFault: planned and actual offset, action,
	// target, parameters (a toxic's type and attributes) and the error when the step failed.
	Fault *Fault `json:"fault,omitempty"`
}

// Scenario identifies the scenario a run came from and the overrides it ran with.
type Scenario struct {
	File        string   `json:"file"`
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	TimeScale   float64  `json:"time_scale"`
	Flaws       []string `json:"flaws,omitempty"` // the embedded gateway's flaws as run
	// Source is the scenario file as written; with TimeScale and Flaws it reproduces the run.
	Source string `json:"source,omitempty"`
}

// Worker is one worker process (or remote agent) of the run.
type Worker struct {
	// Index is the worker's shard: the part of the plan it ran (0 to len(Workers)-1).
	Index int `json:"index"`
	// Addr is the agent's address (host:port) the controller talked to.
	Addr string `json:"addr,omitempty"`
	// Kind is what ran the shard: WorkerAgent, WorkerSpawned or WorkerInProcess.
	Kind string `json:"kind,omitempty"`
	// Transport is how the controller talked to it: "tls" (certificate verified), "http"
	// (loopback) or "http-insecure" (plain HTTP off loopback, allowed explicitly).
	Transport string `json:"transport,omitempty"`
	PID       int    `json:"pid,omitempty"`
	Clients   int    `json:"clients"`
	Status    string `json:"status"`
	Error     string `json:"error,omitempty"`
	// Stats is the worker's own last snapshot (the merged Stats is the union of these).
	Stats *Stats `json:"stats,omitempty"`
	// Summary is how the worker's part of the run went, as it reported it (nil when it reported
	// nothing, e.g. lost before the end).
	Summary *WorkerSummary `json:"summary,omitempty"`
}

// SLOVerdict is one graded objective (filled in by the scenarios and gates).
type SLOVerdict struct {
	Name   string `json:"name"`
	Metric string `json:"metric"` // the metric, with ":label" for a labelled one
	Bound  string `json:"bound"`  // the aggregation and the bound as people read it ("p99 <= 45s")
	// Agg, Cohort ("" = every client), Op, Threshold and Unit are the SLO as a machine reads it:
	// Agg of Metric over Cohort must be Op Threshold, in Unit (the metric's base unit).
	Agg       string  `json:"agg"`
	Cohort    string  `json:"cohort,omitempty"`
	Op        string  `json:"op"`
	Threshold float64 `json:"threshold"`
	Unit      string  `json:"unit"`
	// Optional SLOs pass without data.
	Optional bool `json:"optional,omitempty"`
	// Value is the observed value in the metric's base unit (seconds, bytes, count, per second);
	// 0 when NoData or Unbounded.
	Value float64 `json:"value"`
	Pass  bool    `json:"pass"`
	// NoData is set when the run produced nothing to grade the SLO on.
	NoData bool `json:"no_data,omitempty"`
	// Unbounded is set when the observed value is infinite (a recovery that never happened).
	Unbounded bool   `json:"unbounded,omitempty"`
	Detail    string `json:"detail,omitempty"`
	// Catches names the gateway flaws the SLO is meant to break under, as the scenario says.
	Catches []string `json:"catches,omitempty"`
}

// Environment is the machine and process the run used.
type Environment struct {
	GoVersion   string   `json:"go_version"`
	OS          string   `json:"os"`
	Arch        string   `json:"arch"`
	Cores       int      `json:"cores"`
	GOMAXPROCS  int      `json:"gomaxprocs"`
	MemoryBytes uint64   `json:"memory_bytes"`
	FDLimitSoft uint64   `json:"fd_limit_soft"`
	FDLimitHard uint64   `json:"fd_limit_hard"`
	Hostname    string   `json:"hostname,omitempty"`
	Seed        uint64   `json:"seed"`
	Args        []string `json:"args,omitempty"`
	// Loadgen is the build of the loadgen binary that ran (the controller's).
	Loadgen Build `json:"loadgen,omitzero"`
	// Gateway is the build of the gateway under test when it says: the embedded reference gateway
	// is part of loadgen's own build; a refserver at a URL exports it on /metrics (ws_build_info).
	// Nil for a gateway that does not say.
	Gateway *Build `json:"gateway,omitempty"`
}

// Build identifies a build of a binary.
type Build struct {
	Name      string `json:"name"`                 // "loadgen", "refserver"
	Version   string `json:"version"`              // release version ("dev" for a plain go build)
	Commit    string `json:"commit,omitempty"`     // VCS revision ("-dirty" when the tree had changes)
	GoVersion string `json:"go_version,omitempty"` // toolchain the binary was built with
}

// New returns a result with the schema version set and the environment collected.
func New(name string, seed uint64) *Result {
	return &Result{Schema: SchemaVersion, Tool: "loadgen", Name: name, Env: CollectEnvironment(seed), Reliable: true}
}

// SetPlan stores the plan as JSON.
func (r *Result) SetPlan(plan any) error {
	b, err := json.Marshal(plan)
	if err != nil {
		return fmt.Errorf("reports: encode plan: %w", err)
	}
	r.Plan = b
	return nil
}

// Judge sets Reliable from the schedule-lag p99 against bound and from lost workers.
func (r *Result) Judge(lagBound time.Duration) {
	var why []string
	if lagBound > 0 {
		if p99 := r.Stats.Percentile(stats.HistScheduleLag, 99); p99 > lagBound {
			why = append(why, fmt.Sprintf("schedule-lag p99 %v above the bound %v: the generator was saturated", p99.Round(time.Microsecond), lagBound))
		}
	}
	lost := 0
	for _, w := range r.Workers {
		if w.Status != WorkerOK {
			lost++
		}
	}
	if lost > 0 {
		why = append(why, fmt.Sprintf("%d of %d workers lost or failed", lost, len(r.Workers)))
	}
	r.Reliable = len(why) == 0
	r.UnreliableReason = strings.Join(why, "; ")
}

// CollectEnvironment describes this machine and process.
func CollectEnvironment(seed uint64) Environment {
	e := Environment{
		GoVersion:  runtime.Version(),
		OS:         runtime.GOOS,
		Arch:       runtime.GOARCH,
		Cores:      runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		Seed:       seed,
		Args:       os.Args,
	}
	e.Hostname, _ = os.Hostname()
	e.MemoryBytes = MemTotal()
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil {
		e.FDLimitSoft, e.FDLimitHard = rl.Cur, rl.Max
	}
	return e
}

// MemTotal returns the machine's memory in bytes from /proc/meminfo (0 when unknown).
func MemTotal() uint64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, _ := strconv.ParseUint(fields[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}
