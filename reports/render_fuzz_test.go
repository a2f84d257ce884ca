package reports

import (
	"encoding/json"
	"io"
	"testing"
	"time"
)

// FuzzRender renders every result ParseJSON accepts — with the seed corpus under
// testdata/fuzz/FuzzRender (small results of both schemas), and, as a seed of its own, the golden
// result with a step ramp and a diagnosis — into every rendering, alone and against itself as a
// baseline. A result that reads must render without panicking: a hand-edited value (an empty
// series, a negative duration, a phase that ends before it starts) may make a rendering fail with an
// error, never crash it.
func FuzzRender(f *testing.F) {
	golden := goldenRun(f)
	golden.StepRamp = &StepRamp{Knee: 0, KneeReached: true, Steps: []RampStep{
		{Phase: "hold-1", Connections: 10, SentRate: 5, DeliveredRate: 50, Pass: true, SLOs: golden.SLOs[:1]},
		{Phase: "hold-2", Connections: 20, SentRate: 9, DeliveredRate: 90, SLOs: golden.SLOs[:1]}}}
	golden.Diagnosis = &Diagnosis{Findings: []Finding{{Class: ClassServer, Code: "shed", Title: "shedding", Severity: SeverityWarning, Evidence: []string{"1 shed"}}}}
	golden.Duration = -time.Second
	b, err := json.Marshal(golden)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseJSON(data)
		if err != nil {
			return
		}
		var opts RenderOptions
		for _, withBaseline := range []bool{false, true} {
			if withBaseline {
				if opts.Comparison, err = Compare(r, r, Tolerances{}, "", ""); err != nil {
					t.Fatalf("a result does not compare with itself: %v", err)
				}
			}
			for _, rd := range Renderings {
				_ = rd.Write(r, io.Discard, opts) // an error is an answer; a panic is not
			}
		}
	})
}
