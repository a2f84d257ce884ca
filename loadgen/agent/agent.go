// Package agent is the controller/agent protocol that spreads a run over several processes: worker
// processes of the loadgen binary on this machine, or agents on other machines. It is JSON over
// HTTP with a shared token (Authorization: Bearer):
//
//	GET  /v1/info                 who the agent is (also checks the token)
//	POST /v1/jobs                 start a Job; 409 while another job runs
//	GET  /v1/jobs/{id}/stream     NDJSON Messages: a tick every second (the interval that just
//	                              closed and the cumulative snapshot), events, and a final done
//	POST /v1/jobs/{id}/stop       stop the job: it ends its ramp, closes its clients cleanly and
//	                              reports as usual
//	POST /v1/shutdown             ask the agent process to exit
//
// Every job carries a shared start instant, so that all workers start together and their
// one-second intervals line up and merge by second. The Controller starts jobs on a set of agents
// (Spawn starts local worker processes of the same binary), merges their streams, and reports a
// worker that dies or stops answering as lost while the rest of the run stands.
//
// The package does not know what a plan or a target is: jobs carry them as JSON and a RunFunc given
// by the binary runs them. An Agent serves any number of streams concurrently and runs one job at a
// time; a Controller's Run is called by one goroutine and calls its update callback from one
// goroutine at a time.
package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/squall-dev/squall/loadgen/stats"
)

// TokenEnv is the environment variable an agent reads its token from when --token is not given.
const TokenEnv = "LOADGEN_AGENT_TOKEN"

// ListenPrefix starts the line an agent prints on stdout once it listens: "listening 127.0.0.1:4321".
const ListenPrefix = "listening "

// Job is one worker's part of a run.
type Job struct {
	ID      string          `json:"id"`
	Worker  int             `json:"worker"`
	Workers int             `json:"workers"`
	StartAt time.Time       `json:"start_at"` // the shared start instant
	Plan    json.RawMessage `json:"plan"`
	Target  json.RawMessage `json:"target,omitempty"`
}

// maxJobBytes bounds a job request (a plan part and its target are a few kilobytes).
const maxJobBytes = 16 << 20

// DecodeJob reads one job request and checks its shape: an id of at most 128 printable characters,
// a worker index within the job's workers, a start instant, a plan that is a JSON object and a
// target that is one when present (what they hold is the RunFunc's to check). Anything after the
// job is an error.
func DecodeJob(r io.Reader) (Job, error) {
	var job Job
	dec := json.NewDecoder(r)
	if err := dec.Decode(&job); err != nil {
		return Job{}, fmt.Errorf("bad job: %w", err)
	}
	if dec.More() {
		return Job{}, errors.New("bad job: more than one JSON value")
	}
	var errs []string
	if job.ID == "" || len(job.ID) > 128 || strings.IndexFunc(job.ID, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		errs = append(errs, "id: want 1 to 128 printable characters")
	}
	if job.Workers < 1 || job.Worker < 0 || job.Worker >= job.Workers {
		errs = append(errs, fmt.Sprintf("worker %d of %d: want 0 <= worker < workers", job.Worker, job.Workers))
	}
	if job.StartAt.IsZero() {
		errs = append(errs, "start_at: missing")
	}
	if t := bytes.TrimSpace(job.Plan); len(t) == 0 || t[0] != '{' {
		errs = append(errs, "plan: want a JSON object")
	}
	if t := bytes.TrimSpace(job.Target); len(t) > 0 && t[0] != '{' {
		errs = append(errs, "target: want a JSON object")
	}
	if len(errs) > 0 {
		slices.Sort(errs)
		return Job{}, fmt.Errorf("bad job: %s", strings.Join(errs, "; "))
	}
	return job, nil
}

// Message types of a job stream.
const (
	MsgTick      = "tick"      // Interval and Snapshot
	MsgEvent     = "event"     // Event
	MsgDone      = "done"      // Snapshot (final), Summary, Error; the last message
	MsgKeepalive = "keepalive" // nothing happened for a while
)

// Message is one line of a job stream.
type Message struct {
	Type     string          `json:"type"`
	Seq      int             `json:"seq"`
	Worker   int             `json:"worker"`
	Interval *stats.Interval `json:"interval,omitempty"`
	Snapshot *stats.Snapshot `json:"snapshot,omitempty"`
	Event    *Event          `json:"event,omitempty"`
	Summary  json.RawMessage `json:"summary,omitempty"`
	Error    string          `json:"error,omitempty"`
}

// Event is something a worker reports while it runs (e.g. a phase starting).
type Event struct {
	At     time.Time `json:"at"`
	Kind   string    `json:"kind"` // e.g. "phase"
	Name   string    `json:"name"`
	Detail string    `json:"detail,omitempty"`
	Worker int       `json:"worker"`
}

// Info describes an agent.
type Info struct {
	Version string `json:"version"`
	PID     int    `json:"pid"`
	Cores   int    `json:"cores"`
	FDLimit uint64 `json:"fd_limit"`
	Busy    bool   `json:"busy"`
	// TLS is set when the agent serves TLS; Insecure when it serves plain HTTP off loopback
	// because it was told to (--insecure).
	TLS      bool `json:"tls,omitempty"`
	Insecure bool `json:"insecure,omitempty"`
}

// Transports: how a controller talks to an agent, as the result records it.
const (
	TransportTLS      = "tls"           // HTTPS, the agent's certificate verified against the controller's CA bundle
	TransportLoopback = "http"          // plain HTTP on loopback (local workers, an agent on this machine)
	TransportInsecure = "http-insecure" // plain HTTP off loopback, allowed explicitly on both sides
)

// ErrUnauthorized is returned when an agent rejects the token.
var ErrUnauthorized = errors.New("agent rejected the token")

// ErrInsecure is returned when a controller would talk plain HTTP to an agent off loopback without
// being allowed to.
var ErrInsecure = errors.New("plain HTTP to an agent off loopback")

// ErrWantsTLS is returned when an agent serving TLS was spoken to in plain HTTP.
var ErrWantsTLS = errors.New("the agent serves TLS")

// errorBody is the JSON body of every error response.
type errorBody struct {
	Error string `json:"error"`
}
