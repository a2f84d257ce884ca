package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/sys/unix"

	"github.com/squall-dev/squall/loadgen/agent"
	"github.com/squall-dev/squall/loadgen/stats"
	"github.com/squall-dev/squall/reports"
)

// progress shows a run as it goes: a live bar on a terminal, plain lines otherwise. update is
// called by the controller (one goroutine); done once at the end.
type progress struct {
	mu      sync.Mutex
	line    progressLine
	plain   io.Writer // plain lines go here; nil when showing a bar or nothing
	bar     *mpb.Bar
	p       *mpb.Progress
	clients int
}

// progressLine is what one update shows.
type progressLine struct {
	Elapsed     time.Duration
	Phase       string
	Conns       int64
	Clients     int
	ConnectRate float64
	SentRate    float64
	RecvRate    float64
	Errors      int64
	P99         time.Duration
	P99Hist     string
	Workers     int
	Lost        int
}

func (l progressLine) String() string {
	s := fmt.Sprintf("[%5.1fs] %-9s conns %d/%d  connect/s %.0f  sent/s %.0f  recv/s %.0f  errors %d  p99 %s %s",
		l.Elapsed.Seconds(), l.Phase, l.Conns, l.Clients, l.ConnectRate, l.SentRate, l.RecvRate, l.Errors, l.P99Hist, ms(l.P99))
	if l.Workers > 1 || l.Lost > 0 {
		s += fmt.Sprintf("  workers %d", l.Workers)
		if l.Lost > 0 {
			s += fmt.Sprintf(" (%d lost)", l.Lost)
		}
	}
	return s
}

// A nil *progress shows nothing: a run that fails before it starts has no display.

// newProgress picks the display: mode auto shows a bar when w is a terminal and plain lines
// otherwise.
func newProgress(w io.Writer, mode string, clients, workers int) *progress {
	pr := &progress{clients: clients, line: progressLine{Phase: "starting", Clients: clients, Workers: workers}}
	if mode == "auto" {
		mode = "plain"
		if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) && termWidth(f) > 0 {
			mode = "bar"
		}
	}
	switch mode {
	case "plain":
		pr.plain = w
	case "bar":
		pr.p = mpb.New(mpb.WithOutput(w), mpb.WithWidth(32), mpb.WithRefreshRate(200*time.Millisecond))
		pr.bar = pr.p.New(int64(max(clients, 1)), mpb.BarStyle(),
			mpb.PrependDecorators(decor.Any(func(decor.Statistics) string {
				pr.mu.Lock()
				defer pr.mu.Unlock()
				return fmt.Sprintf("%-9s %d/%d", pr.line.Phase, pr.line.Conns, pr.line.Clients)
			}, decor.WCSyncSpaceR)),
			mpb.AppendDecorators(decor.Any(func(decor.Statistics) string {
				pr.mu.Lock()
				defer pr.mu.Unlock()
				l := pr.line
				s := fmt.Sprintf("connect/s %.0f sent/s %.0f recv/s %.0f errors %d p99 %s %s", l.ConnectRate, l.SentRate, l.RecvRate, l.Errors, l.P99Hist, ms(l.P99))
				if l.Lost > 0 {
					s += fmt.Sprintf(" lost %d/%d", l.Lost, l.Workers)
				}
				return s
			})),
		)
	}
	return pr
}

// termWidth is the terminal's width in columns (0 when unknown: a bar cannot be drawn).
func termWidth(f *os.File) int {
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return 0
	}
	return int(ws.Col)
}

// lineOf condenses a controller update.
func lineOf(prev progressLine, u agent.Update) progressLine {
	l := prev
	l.Elapsed = u.Elapsed
	for _, ev := range u.Events {
		if ev.Kind == "phase" {
			l.Phase = ev.Name
		}
	}
	l.Conns = max(0, u.Merged.Gauge(stats.GaugeConnections)-u.LostConnections) // a lost worker's clients are gone
	iv := u.Latest
	l.ConnectRate = iv.Rate(stats.CtrConnects)
	l.SentRate = iv.Rate(stats.CtrMessagesSent)
	l.RecvRate = iv.Rate(stats.CtrMessagesReceived)
	_, l.Errors, _ = reports.CountErrors(u.Merged.Counters) // failed connects, abnormal closes, refusals, cuts
	// Live p99: the latest second's fan-out latency, else its connect_time (dial to 101, the span
	// the connect_time SLO grades).
	l.P99, l.P99Hist = 0, "fanout"
	if p := iv.Hists[stats.HistFanout]; p != nil && p.Count > 0 {
		l.P99 = time.Duration(p.P99)
	} else if p := iv.Hists[stats.HistUpgrade]; p != nil && p.Count > 0 {
		l.P99, l.P99Hist = time.Duration(p.P99), "connect_time"
	}
	l.Lost = u.Lost
	return l
}

func (pr *progress) update(u agent.Update) {
	if pr == nil {
		return
	}
	pr.mu.Lock()
	pr.line = lineOf(pr.line, u)
	l := pr.line
	pr.mu.Unlock()
	if pr.bar != nil {
		pr.bar.SetCurrent(l.Conns)
	}
	if pr.plain != nil {
		fmt.Fprintln(pr.plain, l.String())
	}
}

func (pr *progress) done() {
	if pr == nil {
		return
	}
	if pr.bar != nil {
		pr.bar.SetTotal(-1, true)
		pr.p.Wait()
	}
}

// note shows one line about something that happened (a fault of the timeline): printed as it is
// in plain mode, above the bar on a terminal. Safe to call from any goroutine.
func (pr *progress) note(line string) {
	if pr == nil {
		return
	}
	switch {
	case pr.plain != nil:
		fmt.Fprintln(pr.plain, line)
	case pr.p != nil:
		fmt.Fprintln(pr.p, line)
	}
}
