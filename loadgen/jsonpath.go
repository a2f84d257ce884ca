package loadgen

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// jsonPath is a compiled path into a decoded JSON value: "$" (or "") is the whole value,
// "$.push.pub.data", "push.channel" and "items[0].id" step through objects and arrays.
type jsonPath []pathStep

type pathStep struct {
	key   string
	index int // -1 for an object key
}

// parsePath compiles a path.
func parsePath(p string) (jsonPath, error) {
	p = strings.TrimSpace(p)
	p = strings.TrimPrefix(p, "$")
	p = strings.TrimPrefix(p, ".")
	if p == "" {
		return jsonPath{}, nil
	}
	var out jsonPath
	for _, part := range strings.Split(p, ".") {
		key, rest, _ := strings.Cut(part, "[")
		if key == "" && rest == "" {
			return nil, fmt.Errorf("path %q: empty step", p)
		}
		if key != "" {
			out = append(out, pathStep{key: key, index: -1})
		}
		for rest != "" {
			num, after, ok := strings.Cut(rest, "]")
			i, err := strconv.Atoi(num)
			if !ok || err != nil || i < 0 {
				return nil, fmt.Errorf("path %q: bad index [%s", p, rest)
			}
			out = append(out, pathStep{index: i})
			rest = strings.TrimPrefix(after, "[")
			if after != "" && !strings.HasPrefix(after, "[") {
				return nil, fmt.Errorf("path %q: unexpected %q after an index", p, after)
			}
		}
	}
	return out, nil
}

// get follows the path in v.
func (p jsonPath) get(v any) (any, bool) {
	for _, s := range p {
		if s.index < 0 {
			m, ok := v.(map[string]any)
			if !ok {
				return nil, false
			}
			if v, ok = m[s.key]; !ok {
				return nil, false
			}
			continue
		}
		a, ok := v.([]any)
		if !ok || s.index >= len(a) {
			return nil, false
		}
		v = a[s.index]
	}
	return v, true
}

// scalarString is a decoded JSON scalar as text ("" and false for objects and arrays).
func scalarString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(x), true
	case nil:
		return "null", true
	}
	return "", false
}

// matcher tests decoded messages: every path must hold its value ("*" means present with any
// value).
type matcher struct {
	paths  []jsonPath
	values []string
}

func newMatcher(m map[string]string) (matcher, error) {
	var out matcher
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		p, err := parsePath(k)
		if err != nil {
			return out, err
		}
		out.paths = append(out.paths, p)
		out.values = append(out.values, m[k])
	}
	return out, nil
}

func (m matcher) empty() bool { return len(m.paths) == 0 }

func (m matcher) match(v any) bool {
	for i, p := range m.paths {
		got, ok := p.get(v)
		if !ok {
			return false
		}
		if m.values[i] == "*" {
			continue
		}
		if s, ok := scalarString(got); !ok || s != m.values[i] {
			return false
		}
	}
	return true
}
