package scenarios

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestReadme keeps README.md honest: its complete example loads, and it documents every field,
// metric, aggregation, action, toxic type and flaw the package knows.
func TestReadme(t *testing.T) {
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	_, rest, ok := strings.Cut(doc, "## A complete example\n\n```yaml\n")
	example, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("README has no complete example")
	}
	if _, err := Parse("README example", []byte(example)); err != nil {
		t.Errorf("the README's example does not load:\n%v", err)
	}
	var words []string
	var fields func(reflect.Type)
	seen := map[reflect.Type]bool{}
	fields = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || seen[t] {
			return
		}
		seen[t] = true
		for i := range t.NumField() {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
			if name != "" && name != "-" {
				words = append(words, name)
				fields(t.Field(i).Type)
			}
		}
	}
	fields(reflect.TypeOf(Scenario{}))
	words = append(words, metricNames()...)
	words = append(words, aggNames(Aggs)...)
	words = append(words, actionNames()...)
	words = append(words, toxicNames()...)
	words = append(words, KnownFlaws...)
	for _, m := range Metrics {
		if !strings.Contains(doc, m.Meaning) {
			t.Errorf("README.md's catalogue does not carry the meaning of %s: %q", m.Name, m.Meaning)
		}
	}
	for _, w := range words {
		if !strings.Contains(doc, "`"+w+"`") && !strings.Contains(doc, "`"+w+".") && !strings.Contains(doc, "."+w+"`") {
			t.Errorf("README.md does not document `%s`", w)
		}
	}
}

// TestReadmeCatalogue checks each row of README.md's metric catalogue against its entry in Metrics:
// unit, aggregations (the default in bold, first), scaling, whether it is kept per cohort, and that
// no metric is missing from the table or listed there without an entry.
func TestReadmeCatalogue(t *testing.T) {
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(data), "### Metric catalogue\n")
	table, _, _ = strings.Cut(table, "\n## ")
	if !ok {
		t.Fatal("README has no metric catalogue")
	}
	rows := map[string][]string{}
	for _, line := range strings.Split(table, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		name, _, _ := strings.Cut(strings.TrimPrefix(cells[0], "`"), "`")
		rows[name] = cells
	}
	scaling := map[Scaling]string{ScaleNone: "—", ScaleTime: "× f", ScaleRate: "÷ f"}
	for _, m := range Metrics {
		cells, ok := rows[m.Name]
		if !ok {
			t.Errorf("%s: no row in README.md's catalogue", m.Name)
			continue
		}
		delete(rows, m.Name)
		aggs := aggNames(m.Aggs)
		aggs[0] = "**" + aggs[0] + "**"
		cohort := "—"
		if m.PerCohort {
			cohort = "yes"
		}
		needs := "—"
		if len(m.Needs) > 0 {
			var ns []string
			for _, n := range m.Needs {
				ns = append(ns, string(n))
			}
			needs = strings.Join(ns, ", ")
		}
		want := []string{string(m.Unit), strings.Join(aggs, ", "), scaling[m.Scaling], cohort, needs, m.Meaning}
		if len(cells) != 7 || !slices.Equal(cells[1:], want) {
			t.Errorf("%s: README row %q, want %q", m.Name, cells[1:], want)
		}
	}
	for name := range rows {
		t.Errorf("README.md's catalogue lists %s, which Metrics has not", name)
	}
}

// TestMetricsResolve checks that every catalogue entry can be read off a run.
func TestMetricsResolve(t *testing.T) {
	for _, m := range Metrics {
		if m.Resolve == nil {
			t.Errorf("%s has no resolver", m.Name)
		}
	}
}
