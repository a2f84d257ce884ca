package reports

import (
	"bytes"
	"fmt"
	"io"
	"path/filepath"
)

// RenderOptions is what a rendering needs besides the result.
type RenderOptions struct {
	// Glossary explains the SLO metrics and the gateway flaws (a zero one renders without
	// explanations); scenarios.Glossary() is the catalogue's.
	Glossary Glossary
	// Comparison sets the result against a baseline (Compare): every rendering then shows, for
	// each SLO and headline figure, the baseline value, the change and whether it regressed. Nil
	// renders the result alone.
	Comparison *Comparison
}

// Renderings are the files rendered from a result into its output directory, in this order.
var Renderings = []struct {
	File  string
	Write func(r *Result, w io.Writer, opts RenderOptions) error
}{
	{HTMLFileName, (*Result).WriteHTML},
	{JUnitFileName, (*Result).WriteJUnit},
	{SummaryFileName, (*Result).WriteSummary},
}

// WriteRenderings renders report.html, junit.xml and summary.md into dir and returns their paths.
// Every rendering is made in memory first, so that a result that cannot be rendered leaves dir as it
// was; each file is then written atomically (WriteFileAtomic).
func (r *Result) WriteRenderings(dir string, opts RenderOptions) ([]string, error) {
	bufs := make([]bytes.Buffer, len(Renderings))
	for i, rd := range Renderings {
		if err := rd.Write(r, &bufs[i], opts); err != nil {
			return nil, fmt.Errorf("reports: render %s: %w", rd.File, err)
		}
	}
	paths := make([]string, 0, len(Renderings))
	for i, rd := range Renderings {
		p := filepath.Join(dir, rd.File)
		if err := WriteFileAtomic(p, bufs[i].Bytes()); err != nil {
			return paths, err
		}
		paths = append(paths, p)
	}
	return paths, nil
}
