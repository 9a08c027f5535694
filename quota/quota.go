// Package quota is the resource arithmetic of the launcher: a
// value maps resource names (cores, instances, ram, and any name a driver
// reports) to numbers, with a default that stands in for every resource the
// value lacks.
package quota

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// Standard resource names.
const (
	Cores     = "cores"
	Instances = "instances"
	RAM       = "ram"
	Volumes   = "volumes"
	VolumeGB  = "volume-gb"
)

// Inf is the value of an unlimited resource.
var Inf = math.Inf(1)

// Resources is a quota value. The zero value is an empty value with
// default 0 (a usage or a need).
type Resources struct {
	m   map[string]float64
	def float64
}

// New returns a value with cores, instances and ram set (NaN arguments
// take def) plus the extra resources, and def as its default.
func New(cores, instances, ram, def float64, extra map[string]float64) Resources {
	r := Resources{m: make(map[string]float64, 3+len(extra)), def: def}
	for k, v := range map[string]float64{Cores: cores, Instances: instances, RAM: ram} {
		if math.IsNaN(v) {
			v = def
		}
		r.m[k] = v
	}
	for k, v := range extra {
		r.m[k] = v
	}
	return r
}

// Unlimited returns a limit with every resource infinite.
func Unlimited() Resources { return New(Inf, Inf, Inf, Inf, nil) }

// Zero returns a usage with cores, instances and ram at 0 and default 0.
func Zero() Resources { return New(0, 0, 0, 0, nil) }

// FromMap returns a value holding exactly m with default def.
func FromMap(m map[string]float64, def float64) Resources {
	r := Resources{m: make(map[string]float64, len(m)), def: def}
	for k, v := range m {
		r.m[k] = v
	}
	return r
}

// Default returns the value used for resources the value lacks.
func (r Resources) Default() float64 { return r.def }

// Get returns a resource's value, or the default when it is absent.
func (r Resources) Get(name string) float64 {
	if v, ok := r.m[name]; ok {
		return v
	}
	return r.def
}

// Has reports whether the resource is present.
func (r Resources) Has(name string) bool { _, ok := r.m[name]; return ok }

// Set sets one resource.
func (r *Resources) Set(name string, v float64) {
	if r.m == nil {
		r.m = make(map[string]float64)
	}
	r.m[name] = v
}

// Map returns a copy of the resources as a map.
func (r Resources) Map() map[string]float64 {
	out := make(map[string]float64, len(r.m))
	for k, v := range r.m {
		out[k] = v
	}
	return out
}

// Names returns the resource names, sorted.
func (r Resources) Names() []string {
	out := make([]string, 0, len(r.m))
	for k := range r.m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Clone returns an independent copy.
func (r Resources) Clone() Resources { return FromMap(r.m, r.def) }

// Add adds b to r: resources r lacks are first inserted with r's default,
// and resources b lacks count as b's default.
func (r *Resources) Add(b Resources) { r.combine(b, 1) }

// AddN adds n times b to r (the rules of Add).
func (r *Resources) AddN(b Resources, n float64) {
	if n == 0 {
		return
	}
	scaled := Resources{m: make(map[string]float64, len(b.m)), def: b.def * n}
	for k, v := range b.m {
		scaled.m[k] = v * n
	}
	r.combine(scaled, 1)
}

// Sub subtracts b from r with the same rules as Add.
func (r *Resources) Sub(b Resources) { r.combine(b, -1) }

func (r *Resources) combine(b Resources, sign float64) {
	if r.m == nil {
		r.m = make(map[string]float64, len(b.m))
	}
	for k := range b.m {
		if _, ok := r.m[k]; !ok {
			r.m[k] = r.def
		}
	}
	for k, v := range r.m {
		bv, ok := b.m[k]
		if !ok {
			bv = b.def
		}
		switch {
		case math.IsInf(v, 0) && math.IsInf(bv, 0):
			// ∞ − ∞ never arises in the launcher's sequences; keep ∞.
		default:
			r.m[k] = v + sign*bv
		}
	}
}

// NonNegative reports whether every resource is ≥ 0.
func (r Resources) NonNegative() bool {
	for _, v := range r.m {
		if v < 0 {
			return false
		}
	}
	return true
}

// Negative returns the names of the resources below zero, sorted.
func (r Resources) Negative() []string {
	var out []string
	for k, v := range r.m {
		if v < 0 {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// String formats the value as "{cores: 4, instances: 1, ram: 8192}".
func (r Resources) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range r.Names() {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s: %s", k, FormatNumber(r.m[k]))
	}
	b.WriteByte('}')
	return b.String()
}

// FormatNumber prints integral numbers without a fraction and ∞ as "inf".
func FormatNumber(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "inf"
	case math.IsInf(v, -1):
		return "-inf"
	case v == math.Trunc(v):
		return fmt.Sprintf("%d", int64(v))
	}
	return fmt.Sprintf("%g", v)
}
