package chaos

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// ToxicType names a Toxiproxy toxic.
type ToxicType string

// The toxics Toxiproxy v2 ships with. Each one's attributes are listed by
// [ToxicType.Attributes].
const (
	// Latency delays every chunk by latency ± jitter milliseconds.
	Latency ToxicType = "latency"
	// Bandwidth limits the stream to rate KB/s.
	Bandwidth ToxicType = "bandwidth"
	// SlowClose delays the close of the stream by delay milliseconds.
	SlowClose ToxicType = "slow_close"
	// Timeout drops all data (a black hole) and, when timeout > 0, closes the
	// connection after timeout milliseconds. Removing it closes the
	// connections it held.
	Timeout ToxicType = "timeout"
	// ResetPeer closes the connection with a TCP RST timeout milliseconds
	// after the first data. Only connections opened while it exists get a real
	// RST (Toxiproxy sets SO_LINGER 0 when the connection is linked).
	ResetPeer ToxicType = "reset_peer"
	// LimitData closes the stream after bytes bytes have passed.
	LimitData ToxicType = "limit_data"
	// Slicer cuts data into chunks of average_size ± size_variation bytes
	// with delay microseconds between them; everything is still delivered.
	Slicer ToxicType = "slicer"
)

// ToxicTypes lists every supported toxic type, sorted.
func ToxicTypes() []ToxicType {
	out := make([]ToxicType, 0, len(toxicAttrs))
	for t := range toxicAttrs {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// Unit is the unit of a toxic attribute, as Toxiproxy takes it.
type Unit string

// Attribute units.
const (
	Milliseconds    Unit = "ms"
	Microseconds    Unit = "us"
	Bytes           Unit = "bytes"
	KilobytesPerSec Unit = "KB/s"
)

// AttributeSpec describes one attribute of a toxic type.
type AttributeSpec struct {
	Name     string // the Toxiproxy attribute name, e.g. "jitter"
	Unit     Unit   // the unit of the integer value
	Required bool   // whether a toxic of this type without it is rejected
	Doc      string // one line for documentation and error messages
}

// FromDuration converts d to this attribute's unit (ms or µs), truncating.
// It returns an error for attributes that are not durations.
func (a AttributeSpec) FromDuration(d time.Duration) (int64, error) {
	switch a.Unit {
	case Milliseconds:
		return d.Milliseconds(), nil
	case Microseconds:
		return d.Microseconds(), nil
	}
	return 0, fmt.Errorf("chaos: attribute %s is in %s, not a duration", a.Name, a.Unit)
}

var toxicAttrs = map[ToxicType][]AttributeSpec{
	Latency: {
		{Name: "latency", Unit: Milliseconds, Required: true, Doc: "added delay"},
		{Name: "jitter", Unit: Milliseconds, Doc: "uniform ± variation of the delay"},
	},
	Bandwidth: {
		{Name: "rate", Unit: KilobytesPerSec, Required: true, Doc: "throughput limit (0 = unlimited)"},
	},
	SlowClose: {
		{Name: "delay", Unit: Milliseconds, Required: true, Doc: "delay before the close is passed on"},
	},
	Timeout: {
		{Name: "timeout", Unit: Milliseconds, Doc: "close after this long (0 = hold forever)"},
	},
	ResetPeer: {
		{Name: "timeout", Unit: Milliseconds, Doc: "reset this long after the first data (0 = at once)"},
	},
	LimitData: {
		{Name: "bytes", Unit: Bytes, Required: true, Doc: "bytes let through before the close"},
	},
	Slicer: {
		{Name: "average_size", Unit: Bytes, Required: true, Doc: "mean chunk size"},
		{Name: "size_variation", Unit: Bytes, Doc: "± variation of the chunk size (< average_size)"},
		{Name: "delay", Unit: Microseconds, Doc: "pause between chunks"},
	},
}

// Attributes returns the attributes a toxic type takes, or nil for an
// unknown type.
func (t ToxicType) Attributes() []AttributeSpec {
	return slices.Clone(toxicAttrs[t])
}

// Valid reports whether t is a supported toxic type.
func (t ToxicType) Valid() bool {
	_, ok := toxicAttrs[t]
	return ok
}

// Stream is the direction a toxic acts on, seen from the client.
type Stream string

// Streams.
const (
	// Upstream is client → server data.
	Upstream Stream = "upstream"
	// Downstream is server → client data (Toxiproxy's default).
	Downstream Stream = "downstream"
)

// Toxic is one toxic to add to a proxy.
type Toxic struct {
	// Name identifies the toxic on its proxy; RemoveToxic takes it. Required.
	Name string `json:"name"`
	// Type is the kind of toxic. Required.
	Type ToxicType `json:"type"`
	// Stream is the direction it acts on. Zero means Downstream.
	Stream Stream `json:"stream,omitempty"`
	// Toxicity is the probability (0 < p ≤ 1) that a connection direction
	// gets the toxic; it is drawn once per connection direction when the toxic
	// is added or the connection opens. Zero means 1 (every connection).
	Toxicity float64 `json:"toxicity,omitempty"`
	// Attributes are the type's integer attributes in Toxiproxy's units (see
	// ToxicType.Attributes). Missing optional attributes are 0.
	Attributes map[string]int64 `json:"attributes,omitempty"`
}

// withDefaults returns t with the zero values replaced by their defaults.
func (t Toxic) withDefaults() Toxic {
	if t.Stream == "" {
		t.Stream = Downstream
	}
	if t.Toxicity == 0 {
		t.Toxicity = 1
	}
	return t
}

// Validate reports every problem with t at once. Field names in the errors
// are relative to the toxic ("type", "attributes.latency").
func (t Toxic) Validate() error {
	var errs []error
	for _, fe := range t.problems() {
		errs = append(errs, errors.New(fe.field+": "+fe.msg))
	}
	return errors.Join(errs...)
}

type fieldError struct{ field, msg string }

func (t Toxic) problems() []fieldError {
	var out []fieldError
	add := func(field, format string, args ...any) {
		out = append(out, fieldError{field, fmt.Sprintf(format, args...)})
	}
	if t.Name == "" {
		add("name", "missing")
	} else if strings.ContainsAny(t.Name, "/?#% ") {
		add("name", "%q contains a character not allowed in a toxic name", t.Name)
	}
	switch t.Stream {
	case "", Upstream, Downstream:
	default:
		add("stream", "%q is not upstream or downstream", t.Stream)
	}
	if t.Toxicity < 0 || t.Toxicity > 1 {
		add("toxicity", "%g is outside 0..1", t.Toxicity)
	}
	if t.Type == "" {
		add("type", "missing (want one of %s)", typeList())
		return out
	}
	specs, ok := toxicAttrs[t.Type]
	if !ok {
		add("type", "unknown toxic type %q (want one of %s)", t.Type, typeList())
		return out
	}
	names := make([]string, 0, len(t.Attributes))
	for k := range t.Attributes {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		i := slices.IndexFunc(specs, func(s AttributeSpec) bool { return s.Name == k })
		if i < 0 {
			add("attributes."+k, "unknown attribute for %s (want %s)", t.Type, attrList(specs))
			continue
		}
		if v := t.Attributes[k]; v < 0 {
			add("attributes."+k, "%d is negative", v)
		}
	}
	for _, s := range specs {
		if _, ok := t.Attributes[s.Name]; s.Required && !ok {
			add("attributes."+s.Name, "missing (%s, in %s)", s.Doc, s.Unit)
		}
	}
	if t.Type == Slicer {
		avg, vari := t.Attributes["average_size"], t.Attributes["size_variation"]
		if avg > 0 && vari >= avg {
			add("attributes.size_variation", "%d must be smaller than average_size %d", vari, avg)
		}
		if _, ok := t.Attributes["average_size"]; ok && avg == 0 {
			add("attributes.average_size", "must be positive")
		}
	}
	return out
}

func typeList() string {
	var b strings.Builder
	for i, t := range ToxicTypes() {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(string(t))
	}
	return b.String()
}

func attrList(specs []AttributeSpec) string {
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	return strings.Join(names, ", ")
}
