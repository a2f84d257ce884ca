package harness

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/squall-dev/squall/internal/tlstest"
	"github.com/squall-dev/squall/loadgen/agent"
	"github.com/squall-dev/squall/reports"
)

// nonLoopbackIP is an IPv4 address of this machine off loopback (the test is skipped without one).
func nonLoopbackIP(t *testing.T) net.IP {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Skipf("no interface addresses: %v", err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			return n.IP.To4()
		}
	}
	t.Skip("this machine has no IPv4 address off loopback")
	return nil
}

// listenLine collects what an agent prints on stdout and hands over its address.
type listenLine struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	addr chan string
}

func (l *listenLine) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	if line, ok := strings.CutPrefix(l.buf.String(), agent.ListenPrefix); ok && strings.HasSuffix(line, "\n") {
		l.addr <- strings.TrimSpace(line)
		l.buf.Reset()
	}
	return len(p), nil
}

// serveAgent runs ServeAgent with o until the test ends and returns its address.
func serveAgent(t *testing.T, o AgentOptions) string {
	t.Helper()
	ll := &listenLine{addr: make(chan string, 1)}
	o.Stdout = ll
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeAgent(ctx, o) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
	})
	select {
	case addr := <-ll.addr:
		return addr
	case err := <-done:
		done <- err
		t.Fatalf("agent did not start: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("agent did not print its address within 10 s")
	}
	return ""
}

// TestAgentOffLoopback serves an agent with TLS on an address of this machine off loopback and
// checks who it lets in: a controller with the right CA and token runs a plan on it (recorded by
// address, shard, kind and transport); a wrong token, plain HTTP, a controller without the CA or
// with another CA are refused.
func TestAgentOffLoopback(t *testing.T) {
	ip := nonLoopbackIP(t)
	certs := tlstest.MakeFor(t, []net.IP{ip})
	addr := serveAgent(t, AgentOptions{Listen: net.JoinHostPort(ip.String(), "0"), Token: "right", TLSCert: certs.ServerCert, TLSKey: certs.ServerKey})
	ctx := t.Context()

	refusals := []struct {
		name  string
		token string
		o     agent.DialOptions
		want  error
		text  string
	}{
		{"wrong token", "wrong", agent.DialOptions{TLS: certs.ClientConfig()}, agent.ErrUnauthorized, ""},
		{"plain HTTP controller", "right", agent.DialOptions{Insecure: true}, agent.ErrWantsTLS, ""},
		{"controller with neither TLS nor insecure", "right", agent.DialOptions{}, agent.ErrInsecure, ""},
		{"controller trusting another CA", "right", agent.DialOptions{TLS: &tls.Config{RootCAs: x509.NewCertPool()}}, nil, "certificate signed by unknown authority"},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			_, err := agent.DialWith(ctx, addr, tt.token, tt.o)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) || !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("dial: %v, want %v %s", err, tt.want, tt.text)
			}
			t.Log(err)
		})
	}

	r, err := agent.DialWith(ctx, addr, "right", agent.DialOptions{TLS: certs.ClientConfig()})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Info.TLS || r.Info.Insecure || r.Transport() != agent.TransportTLS {
		t.Errorf("info %+v, transport %s", r.Info, r.Transport())
	}

	if testing.Short() {
		return
	}
	res, err := Run(ctx, planSpec(20, 2, time.Second), Options{Agents: []string{addr}, Token: "right", AgentTLS: certs.ClientConfig()})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Workers) != 1 {
		t.Fatalf("%d workers", len(res.Workers))
	}
	w := res.Workers[0]
	if w.Addr != addr || w.Index != 0 || w.Kind != reports.WorkerAgent || w.Transport != agent.TransportTLS || w.Status != reports.WorkerOK || w.Clients != 20 {
		t.Errorf("worker %+v", w)
	}
	for _, ev := range res.Events {
		if ev.Kind == reports.EventWarning {
			t.Errorf("warning in a TLS run: %s", ev.Message)
		}
	}

	// The same agent refuses a run whose controller lacks the CA, before anything starts.
	_, err = Run(ctx, planSpec(20, 2, time.Second), Options{Agents: []string{addr}, Token: "right"})
	if !IsUsage(err) || !errors.Is(err, agent.ErrInsecure) {
		t.Errorf("run without the CA: %v, want a usage error", err)
	}
}

// TestInsecureAgent: off loopback without TLS an agent refuses to start unless told --insecure;
// then it warns, and a controller allowed to speak plain HTTP records it in the result.
func TestInsecureAgent(t *testing.T) {
	ip := nonLoopbackIP(t)
	listen := net.JoinHostPort(ip.String(), "0")
	err := ServeAgent(t.Context(), AgentOptions{Listen: listen, Token: "t"})
	if !IsUsage(err) || !strings.Contains(err.Error(), "refusing plain HTTP") {
		t.Fatalf("plain HTTP off loopback without --insecure: %v", err)
	}

	var warn syncBuffer
	addr := serveAgent(t, AgentOptions{Listen: listen, Token: "t", Insecure: true, Warn: &warn})
	if !strings.Contains(warn.String(), "WARNING: agent serving plain HTTP on "+addr) {
		t.Errorf("warning %q", warn.String())
	}
	if _, err := agent.Dial(t.Context(), addr, "t"); !errors.Is(err, agent.ErrInsecure) {
		t.Errorf("controller not allowed plain HTTP: %v", err)
	}
	if testing.Short() {
		return
	}
	res, err := Run(t.Context(), planSpec(10, 1, time.Second), Options{Agents: []string{addr}, Token: "t", AgentsInsecure: true})
	if err != nil {
		t.Fatal(err)
	}
	if w := res.Workers[0]; w.Transport != agent.TransportInsecure || w.Kind != reports.WorkerAgent {
		t.Errorf("worker %+v", w)
	}
	warned := false
	for _, ev := range res.Events {
		warned = warned || (ev.Kind == reports.EventWarning && strings.Contains(ev.Message, addr) && strings.Contains(ev.Message, "plain HTTP"))
	}
	if !warned {
		t.Errorf("no warning event about the insecure agent in %+v", res.Events)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestShutdownAgents: with ShutdownAgents the agents exit once the run is over (a Kubernetes Job
// of agents then completes).
func TestShutdownAgents(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a plan")
	}
	ll := &listenLine{addr: make(chan string, 1)}
	done := make(chan error, 1)
	go func() {
		done <- ServeAgent(context.Background(), AgentOptions{Listen: "127.0.0.1:0", Token: "t", Stdout: ll})
	}()
	var addr string
	select {
	case addr = <-ll.addr:
	case err := <-done:
		t.Fatalf("agent did not start: %v", err)
	}
	if _, err := Run(t.Context(), planSpec(10, 1, time.Second), Options{Agents: []string{addr}, Token: "t", ShutdownAgents: true}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("agent: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the agent did not exit within 10 s of the run's end")
	}
}
