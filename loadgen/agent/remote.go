package agent

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Remote is a connection to one agent: a worker process this controller spawned or an agent
// started elsewhere. Its methods are safe for concurrent use.
//
// While a job's stream is open, the Remote keeps two more connections to the agent open and idle
// (spare), so that reopening a broken stream, and then asking the agent to stop, need no new TCP
// connection: on a machine whose connection-tracking table or ports a run has filled, new
// connections fail while established ones carry on.
type Remote struct {
	Addr  string // host:port
	Info  Info
	token string
	http  *http.Client
	proc  *process // set when this controller spawned the agent
	tls   bool

	sparing atomic.Bool // spare connections are being made
}

// DialOptions say how a controller talks to agents.
type DialOptions struct {
	// TLS, when set, makes the controller speak HTTPS and verify the agent's certificate with it
	// (RootCAs: the CA bundle the agents' certificates chain to).
	TLS *tls.Config
	// Insecure allows plain HTTP to an agent off loopback (the token and every job then travel in
	// clear); without it such an agent is refused with ErrInsecure. Loopback agents always may
	// speak plain HTTP.
	Insecure bool
}

// Dial checks that an agent answers at addr (host:port) over plain HTTP on loopback and accepts
// token, and returns it. A wrong token gives an error wrapping ErrUnauthorized.
func Dial(ctx context.Context, addr, token string) (*Remote, error) {
	return DialWith(ctx, addr, token, DialOptions{})
}

// DialWith is Dial with TLS or an explicit permission to speak plain HTTP off loopback. An agent
// off loopback with neither is refused with ErrInsecure before anything is sent; an agent serving
// TLS spoken to in plain HTTP answers with an error wrapping ErrWantsTLS.
func DialWith(ctx context.Context, addr, token string, o DialOptions) (*Remote, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("agent %s: want host:port: %w", addr, err)
	}
	if o.TLS == nil && !o.Insecure && !isLoopbackHost(host) {
		return nil, fmt.Errorf("agent %s: %w: give the controller the agents' CA bundle (TLS), or allow plain HTTP explicitly (insecure)", addr, ErrInsecure)
	}
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 4,
		TLSHandshakeTimeout: 5 * time.Second,
	}
	if o.TLS != nil {
		tr.TLSClientConfig = o.TLS.Clone()
		if tr.TLSClientConfig.MinVersion < tls.VersionTLS12 {
			tr.TLSClientConfig.MinVersion = tls.VersionTLS12
		}
	}
	r := &Remote{Addr: addr, token: token, http: &http.Client{Transport: tr}, tls: o.TLS != nil}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := r.do(ctx, http.MethodGet, "/v1/info", nil, &r.Info); err != nil {
		return nil, err
	}
	return r, nil
}

// Transport is how the controller talks to the agent: TransportTLS, TransportLoopback or
// TransportInsecure.
func (r *Remote) Transport() string {
	switch {
	case r.tls:
		return TransportTLS
	case r.Info.Insecure:
		return TransportInsecure
	}
	if host, _, err := net.SplitHostPort(r.Addr); err == nil && isLoopbackHost(host) {
		return TransportLoopback
	}
	return TransportInsecure
}

// isLoopbackHost reports whether host (a name or an address) is this machine's loopback.
func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// PID is the agent's process id.
func (r *Remote) PID() int { return r.Info.PID }

// Spawned reports whether this controller started the agent's process.
func (r *Remote) Spawned() bool { return r.proc != nil }

func (r *Remote) url(path string) string {
	if r.tls {
		return "https://" + r.Addr + path
	}
	return "http://" + r.Addr + path
}

func (r *Remote) request(ctx context.Context, method, path string, body any) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("agent %s: encode request: %w", r.Addr, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, r.url(path), rd)
	if err != nil {
		return nil, fmt.Errorf("agent %s: %w", r.Addr, err)
	}
	req.Header.Set("Authorization", "Bearer "+r.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

// do sends a request and decodes a JSON answer into out (when not nil).
func (r *Remote) do(ctx context.Context, method, path string, body, out any) error {
	req, err := r.request(ctx, method, path, body)
	if err != nil {
		return err
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return fmt.Errorf("agent %s unreachable: %w", r.Addr, unwrapURL(err))
	}
	defer resp.Body.Close()
	if err := checkStatus(r.Addr, resp); err != nil {
		return err
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("agent %s: bad answer to %s %s: %w", r.Addr, method, path, err)
	}
	return nil
}

// A silenceWatch calls silent once no line has been heard for idle. It checks on a timer; a check
// that runs more than stallLate after it was due means this process was held up (its goroutines
// did not run, the lines may be waiting unread, and a backlog of them takes a while to decode on a
// busy machine), so the reader is given another idle bound before the silence counts.
type silenceWatch struct {
	idle   time.Duration
	silent func()
	base   time.Time    // monotonic origin of heard and due
	heard  atomic.Int64 // since base, when the last line was read
	timer  *time.Timer
	due    time.Duration // since base, when the pending check should run; touched by the timer only
}

func newSilenceWatch(idle time.Duration, silent func()) *silenceWatch {
	w := &silenceWatch{idle: idle, silent: silent, base: time.Now(), due: idle}
	w.timer = time.AfterFunc(idle, w.check)
	return w
}

func (w *silenceWatch) wrap(fn func(Message)) func(Message) {
	return func(m Message) {
		w.heard.Store(int64(time.Since(w.base)))
		fn(m)
	}
}

func (w *silenceWatch) check() {
	now := time.Since(w.base)
	next, silent := w.decide(now, time.Duration(w.heard.Load()))
	if silent {
		w.silent()
		return
	}
	w.due = now + next
	w.timer.Reset(next)
}

// decide is the check at now (since base) of a stream last heard at heard: silent, or when to
// check again.
func (w *silenceWatch) decide(now, heard time.Duration) (next time.Duration, silent bool) {
	if now-w.due > stallLate {
		return w.idle, false
	}
	if quiet := now - heard; quiet < w.idle {
		return w.idle - quiet, false
	}
	return 0, true
}

func (w *silenceWatch) stop() { w.timer.Stop() }

func unwrapURL(err error) error {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			return inner
		}
	}
	return err
}

func checkStatus(addr string, resp *http.Response) error {
	if resp.StatusCode/100 == 2 {
		return nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	var eb errorBody
	_ = json.Unmarshal(body, &eb)
	if resp.StatusCode == http.StatusBadRequest && bytes.Contains(body, []byte("HTTPS server")) {
		return fmt.Errorf("agent %s: %w: give the controller the agents' CA bundle", addr, ErrWantsTLS)
	}
	if resp.StatusCode == http.StatusUnauthorized {
		return fmt.Errorf("agent %s: %w (%s)", addr, ErrUnauthorized, resp.Status)
	}
	msg := eb.Error
	if msg == "" {
		msg = resp.Status
	}
	return fmt.Errorf("agent %s: %s (%d)", addr, msg, resp.StatusCode)
}

// Start submits a job.
func (r *Remote) Start(ctx context.Context, job Job) error {
	return r.do(ctx, http.MethodPost, "/v1/jobs", job, nil)
}

// Stop asks the agent to stop a job cleanly.
func (r *Remote) Stop(ctx context.Context, jobID string) error {
	return r.do(ctx, http.MethodPost, "/v1/jobs/"+jobID+"/stop", nil, nil)
}

// Shutdown asks the agent process to exit.
func (r *Remote) Shutdown(ctx context.Context) error {
	return r.do(ctx, http.MethodPost, "/v1/shutdown", nil, nil)
}

// spare makes sure, in the background, that idle connections to the agent wait in the client's
// pool: it asks for the agent's info twice at once, and the connections that carried the answers
// stay open. Two, so that a stream reopened on one leaves the other for the stop. A failure only
// means fewer spares (the next request dials as before).
func (r *Remote) spare(ctx context.Context) {
	if !r.sparing.CompareAndSwap(false, true) {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			var info Info
			_ = r.do(ctx, http.MethodGet, "/v1/info", nil, &info)
		})
	}
	go func() {
		wg.Wait()
		cancel()
		r.sparing.Store(false)
	}()
}

// stallLate is how late an idle check must run to show that this process, not the agent, was held
// up (a saturated machine): the lines may be waiting unread, and the reader is given another idle
// bound to take them.
const stallLate = time.Second

// Stream reads a job's messages from index from on and calls fn for each (keepalives included)
// until the done message, an error, or ctx ends. idle bounds the silence between two lines (the
// agent sends a keepalive every couple of seconds); zero means no bound. Once the stream is open,
// spare connections are made (see Remote).
func (r *Remote) Stream(ctx context.Context, jobID string, from int, idle time.Duration, fn func(Message)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := r.request(ctx, http.MethodGet, "/v1/jobs/"+jobID+"/stream?from="+strconv.Itoa(from), nil)
	if err != nil {
		return err
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return fmt.Errorf("agent %s unreachable: %w", r.Addr, unwrapURL(err))
	}
	defer resp.Body.Close()
	if err := checkStatus(r.Addr, resp); err != nil {
		return err
	}
	r.spare(ctx)
	if idle > 0 {
		w := newSilenceWatch(idle, cancel)
		defer w.stop()
		fn = w.wrap(fn)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 256<<20)
	for sc.Scan() {
		var m Message
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return fmt.Errorf("agent %s: bad stream line: %w", r.Addr, err)
		}
		fn(m)
		if m.Type == MsgDone {
			return nil
		}
	}
	err = sc.Err()
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	if ctx.Err() != nil && idle > 0 {
		return fmt.Errorf("agent %s: no message for %v: %w", r.Addr, idle, err)
	}
	return fmt.Errorf("agent %s: stream ended before the job did: %w", r.Addr, err)
}
