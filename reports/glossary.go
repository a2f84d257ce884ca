package reports

import "strings"

// Glossary explains what a report names: what each SLO metric measures and which failure it
// catches, and what each gateway flaw is. The catalogue that owns the metrics (package scenarios)
// provides it; a zero Glossary renders without explanations.
type Glossary struct {
	Metrics map[string]MetricDoc // by metric name (without a ":label")
	Flaws   map[string]string    // a flaw's one-line description, by name
}

// MetricDoc is one metric's explanation.
type MetricDoc struct {
	Meaning string // what is measured, one sentence
	Catches string // the failure an SLO on it catches, one sentence
}

// Metric returns the explanation of metric, which may carry a ":label".
func (g Glossary) Metric(metric string) MetricDoc {
	name, _, _ := strings.Cut(metric, ":")
	return g.Metrics[name]
}
