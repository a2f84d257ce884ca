package reports

import (
	"bytes"
	"fmt"
)

// classTitles say where each finding class lies, for people.
var classTitles = map[string]string{
	ClassClient:  "Client side",
	ClassBetween: "Between the clients and the gateway",
	ClassServer:  "Server side",
}

// findingGroup is the findings of one class, in the flowchart's order.
type findingGroup struct {
	Class, Title string
	Findings     []Finding
}

// groupFindings groups d's findings by class in Classes' order (a class no finding has is left
// out; a class not in Classes comes last, under its own name).
func groupFindings(d *Diagnosis) []findingGroup {
	if d == nil {
		return nil
	}
	var out []findingGroup
	seen := map[string]bool{}
	add := func(class string) {
		g := findingGroup{Class: class, Title: classTitles[class]}
		if g.Title == "" {
			g.Title = class
		}
		for _, f := range d.Findings {
			if f.Class == class {
				g.Findings = append(g.Findings, f)
			}
		}
		if len(g.Findings) > 0 {
			out = append(out, g)
		}
		seen[class] = true
	}
	for _, c := range Classes {
		add(c)
	}
	for _, f := range d.Findings {
		if !seen[f.Class] {
			add(f.Class)
		}
	}
	return out
}

// writeDiagnosisMarkdown writes the diagnosis section of summary.md.
func writeDiagnosisMarkdown(b *bytes.Buffer, d *Diagnosis) {
	b.WriteString("**Diagnosis**")
	groups := groupFindings(d)
	if len(groups) == 0 {
		b.WriteString(": the figures point to no fault.\n\n")
		return
	}
	b.WriteString("\n\n")
	for _, g := range groups {
		for _, f := range g.Findings {
			fmt.Fprintf(b, "- **%s** (%s): %s\n", mdEscape(g.Title), mdEscape(f.Severity), mdEscape(f.Title))
			for _, e := range f.Evidence {
				fmt.Fprintf(b, "  - %s\n", mdEscape(e))
			}
			if f.Fix != "" {
				fmt.Fprintf(b, "  - fix: %s\n", mdEscape(f.Fix))
			}
		}
	}
	b.WriteString("\n")
}
