package reports_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// ArtefactsEnv names a directory the browser test saves its screenshots into (default: the
// test's temporary directory, removed after it).
const ArtefactsEnv = "SQUALL_TEST_ARTEFACTS"

// findBrowser returns the path of a Chromium-family browser, or why there is none.
func findBrowser() (string, error) {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no chromium, chromium-browser or google-chrome on PATH (make deps installs Debian's chromium)")
}

// chartDrawing is what the browser drew of one chart.
type chartDrawing struct {
	ID     string  `json:"id"`
	Width  float64 `json:"width"`
	Height float64 `json:"height"`
	Paths  int     `json:"paths"` // path elements with a non-empty bounding box
}

const measureCharts = `Array.from(document.querySelectorAll('figure.chart')).map(f => {
	const svg = f.querySelector('svg');
	const r = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
	let paths = 0;
	if (svg) for (const p of svg.querySelectorAll('path')) { const b = p.getBBox(); if (b.width > 0 || b.height > 0) paths++; }
	return {id: f.id, width: r.width, height: r.height, paths: paths};
})`

// widestElements names the outermost elements that stick out of the viewport, for the error message.
const widestElements = `Array.from(document.querySelectorAll('body *')).filter(e => {
	const r = e.getBoundingClientRect();
	if (r.right <= window.innerWidth + 1) return false;
	for (let p = e.parentElement; p && p !== document.body; p = p.parentElement) {
		if (p.getBoundingClientRect().right > window.innerWidth + 1) return false;
		if (getComputedStyle(p).overflowX !== 'visible') return false; // scrolls in its own box
	}
	return true;
}).slice(0, 5).map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className && typeof e.className === 'string' ? '.' + e.className.split(' ').join('.') : '') + ' (' + Math.round(e.getBoundingClientRect().width) + ' px)')`

// TestReportInBrowser opens real reports in Chromium through file:// (the storm run with a
// diagnosis and a comparison, and the capacity run with its knee) on a desktop and a phone-sized
// viewport: no console error or exception, every chart drawn with content of non-zero size, no page
// wider than the phone's screen, and a screenshot of each saved.
func TestReportInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	browser, err := findBrowser()
	if err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	shots := os.Getenv(ArtefactsEnv)
	if shots == "" {
		shots = dir
	} else if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	pages := map[string]string{}
	for i, fx := range renderFixtures {
		if fx.name != "storm-baseline" && fx.name != "capacity" {
			continue
		}
		r, opts := fixture(t, i)
		r.Diagnosis = testDiagnosis()
		var b strings.Builder
		if err := r.WriteHTML(&b, opts); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, fx.name+".html")
		if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		pages[fx.name] = p
	}

	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.Flag("disable-gpu", true), chromedp.WindowSize(1200, 900))...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	if err := chromedp.Do(bctx); err != nil { // start the browser, without a timeout (see chromedp.Run)
		t.Skipf("chromium at %s does not start: %v", browser, err)
	}

	for _, name := range []string{"storm-baseline", "capacity"} {
		for _, vp := range []struct {
			name          string
			width, height int64
		}{{"desktop", 1200, 900}, {"phone", 390, 844}} {
			t.Run(name+"/"+vp.name, func(t *testing.T) {
				tctx, cancelTab := chromedp.NewContext(bctx) // a tab of its own
				defer cancelTab()
				ctx, cancel := context.WithTimeout(tctx, 90*time.Second)
				defer cancel()
				var mu sync.Mutex
				var problems []string
				if err := chromedp.Listen(ctx, func(ev any) {
					mu.Lock()
					defer mu.Unlock()
					switch e := ev.(type) {
					case *runtime.EventConsoleAPICalled:
						if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeAssert {
							problems = append(problems, fmt.Sprintf("console.%s", e.Type))
						}
					case *runtime.EventExceptionThrown:
						problems = append(problems, "exception: "+e.ExceptionDetails.Text)
					case *cdplog.EventEntryAdded:
						if e.Entry.Level == cdplog.EntryLevelError {
							problems = append(problems, fmt.Sprintf("%s error: %s %s", e.Entry.Source, e.Entry.Text, e.Entry.URL))
						}
					}
				}); err != nil {
					t.Fatal(err)
				}
				if _, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{}); err != nil {
					t.Fatal(err)
				}
				err := chromedp.Do(ctx,
					chromedp.EmulateViewport(vp.width, vp.height),
					chromedp.Navigate("file://"+pages[name]),
					chromedp.WaitReady(chromedp.CSS("footer")),
				)
				if err != nil {
					t.Fatal(err)
				}
				loadMS, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`performance.getEntriesByType('navigation')[0].loadEventEnd`))
				if err != nil {
					t.Fatal(err)
				}
				charts, err := chromedp.Run(ctx, chromedp.Evaluate[[]chartDrawing](measureCharts))
				if err != nil {
					t.Fatal(err)
				}
				if len(charts) == 0 {
					t.Fatal("no chart on the page")
				}
				for _, c := range charts {
					if c.Width < 100 || c.Height < 40 || c.Paths < 3 {
						t.Errorf("chart %s drawn %.0fx%.0f px with %d non-empty paths", c.ID, c.Width, c.Height, c.Paths)
					}
				}
				overflow, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`document.documentElement.scrollWidth - window.innerWidth`))
				if err != nil {
					t.Fatal(err)
				}
				if overflow > 1 {
					wide, _ := chromedp.Run(ctx, chromedp.Evaluate[[]string](widestElements))
					t.Errorf("the page is %.0f px wider than the %d px viewport: %s", overflow, vp.width, strings.Join(wide, ", "))
				}
				shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(80))
				if err != nil {
					t.Fatal(err)
				}
				p := filepath.Join(shots, fmt.Sprintf("report-%s-%s.jpg", name, vp.name))
				if err := os.WriteFile(p, shot, 0o644); err != nil {
					t.Fatal(err)
				}
				t.Logf("loaded in %.0f ms (a figure, not a bound: the machine is shared); %d charts drawn; screenshot %s (%d bytes)", loadMS, len(charts), p, len(shot))
				mu.Lock()
				defer mu.Unlock()
				for _, p := range problems {
					t.Errorf("browser reported %s", p)
				}
			})
		}
	}
}
