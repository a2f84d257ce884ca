package scenarios

import (
	"os"
	"reflect"
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
