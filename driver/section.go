package driver

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Section is a cursor on one YAML mapping of a configuration file. Its
// getters record a precise error (file, line, key path, expectation) and
// return the default on bad input, so a parser reports every problem of a
// file in one pass. Finish reports keys nobody read.
type Section struct {
	node  *yaml.Node // a mapping node, or nil for an absent section
	path  string
	probs *Problems
	seen  map[string]bool
}

// NewSection returns a cursor on a mapping node.
func NewSection(node *yaml.Node, path string, probs *Problems) *Section {
	s := &Section{node: node, path: path, probs: probs, seen: map[string]bool{}}
	if node != nil && node.Kind != yaml.MappingNode {
		if !(node.Kind == yaml.ScalarNode && node.Tag == "!!null") {
			s.fail(node, "", "expected a dictionary")
		}
		s.node = nil
	}
	return s
}

// Path returns the section's key path.
func (s *Section) Path() string { return s.path }

// Problems returns the collector the section reports to.
func (s *Section) Problems() *Problems { return s.probs }

// Line returns the section's line in the file.
func (s *Section) Line() int {
	if s.node == nil {
		return 0
	}
	return s.node.Line
}

func (s *Section) keyPath(key string) string {
	if s.path == "" {
		return key
	}
	if key == "" {
		return s.path
	}
	return s.path + "." + key
}

func (s *Section) fail(n *yaml.Node, key, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	s.probs.Errors = append(s.probs.Errors, &ConfigError{File: s.probs.File, Line: line, Path: s.keyPath(key), Msg: fmt.Sprintf(format, args...)})
}

// Errorf records an error about key (or about the section when key is "").
func (s *Section) Errorf(key, format string, args ...any) {
	n := s.lookup(key)
	if n == nil {
		n = s.node
	}
	s.fail(n, key, format, args...)
}

// Warnf records a warning about key.
func (s *Section) Warnf(key, format string, args ...any) {
	n := s.lookup(key)
	if n == nil {
		n = s.node
	}
	line := 0
	if n != nil {
		line = n.Line
	}
	s.probs.Warnings = append(s.probs.Warnings, &ConfigError{File: s.probs.File, Line: line, Path: s.keyPath(key), Msg: fmt.Sprintf(format, args...)})
}

func (s *Section) lookup(key string) *yaml.Node {
	if s.node == nil || key == "" {
		return nil
	}
	return lookupIn(s.node, key, 0)
}

// lookupIn finds key in a mapping, following merge keys (<<).
func lookupIn(m *yaml.Node, key string, depth int) *yaml.Node {
	if m.Kind == yaml.AliasNode {
		m = m.Alias
	}
	if m == nil || m.Kind != yaml.MappingNode || depth > 10 {
		return nil
	}
	var found *yaml.Node // the last occurrence wins, as in PyYAML
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key && m.Content[i].Tag != "!!merge" {
			found = m.Content[i+1]
		}
	}
	if found != nil {
		return found
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Tag != "!!merge" {
			continue
		}
		v := m.Content[i+1]
		if v.Kind == yaml.AliasNode {
			v = v.Alias
		}
		srcs := []*yaml.Node{v}
		if v != nil && v.Kind == yaml.SequenceNode {
			srcs = v.Content
		}
		for _, src := range srcs {
			if n := lookupIn(src, key, depth+1); n != nil {
				return n
			}
		}
	}
	return nil
}

// allKeys returns the keys of a mapping in file order, including merged
// ones, with the key nodes.
func allKeys(m *yaml.Node, depth int) []*yaml.Node {
	if m.Kind == yaml.AliasNode {
		m = m.Alias
	}
	if m == nil || m.Kind != yaml.MappingNode || depth > 10 {
		return nil
	}
	var out []*yaml.Node
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i]
		if k.Tag != "!!merge" {
			out = append(out, k)
			continue
		}
		v := m.Content[i+1]
		if v.Kind == yaml.AliasNode {
			v = v.Alias
		}
		srcs := []*yaml.Node{v}
		if v != nil && v.Kind == yaml.SequenceNode {
			srcs = v.Content
		}
		for _, src := range srcs {
			out = append(out, allKeys(src, depth+1)...)
		}
	}
	return out
}

// value returns the node of key, marking it read; nil when absent or null.
func (s *Section) value(key string) *yaml.Node {
	s.seen[key] = true
	n := s.lookup(key)
	if n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null") {
		return nil
	}
	return n
}

// typed is value for a getter expecting typ: in strict mode a key that is
// present with a null value is an error (upstream's schema rejects None).
func (s *Section) typed(key, typ string) *yaml.Node {
	n := s.value(key)
	if n == nil && s.probs.Strict && s.IsNull(key) {
		s.fail(s.lookup(key), key, "expected %s, got null", typ)
	}
	return n
}

// Has reports whether key is present with a non-null value.
func (s *Section) Has(key string) bool { return s.lookup(key) != nil && s.value(key) != nil }

// IsNull reports whether key is present with a null value.
func (s *Section) IsNull(key string) bool {
	n := s.lookup(key)
	if n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n != nil && n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// Node returns the raw YAML node of key without marking it read (nil when
// absent).
func (s *Section) Node(key string) *yaml.Node {
	n := s.lookup(key)
	if n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// Exists reports whether the section is present in the file (not absent
// or null).
func (s *Section) Exists() bool { return s.node != nil }

// Keys returns the section's keys in file order.
func (s *Section) Keys() []string {
	if s.node == nil {
		return nil
	}
	var out []string
	seen := map[string]bool{}
	for _, k := range allKeys(s.node, 0) {
		if !seen[k.Value] {
			seen[k.Value] = true
			out = append(out, k.Value)
		}
	}
	return out
}

// String reads a string; numbers and booleans are refused.
func (s *Section) String(key, def string) string {
	n := s.typed(key, "str")
	if n == nil {
		return def
	}
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		s.fail(n, key, "expected str, got %s", describe(n))
		return def
	}
	return n.Value
}

// Scalar reads a string, accepting numbers and booleans in their text form.
func (s *Section) Scalar(key, def string) string {
	n := s.typed(key, "a scalar")
	if n == nil {
		return def
	}
	if n.Kind != yaml.ScalarNode {
		s.fail(n, key, "expected a scalar, got %s", describe(n))
		return def
	}
	return n.Value
}

// RequiredString reads a string that must be present.
func (s *Section) RequiredString(key string) string {
	if s.value(key) == nil {
		s.fail(s.node, key, "required key not provided")
		return ""
	}
	return s.String(key, "")
}

// Int reads an integer.
func (s *Section) Int(key string, def int) int {
	n := s.typed(key, "int")
	if n == nil {
		return def
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!int" {
		v, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
		if err == nil {
			return int(v)
		}
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!bool" {
		if n.Value == "true" {
			return 1
		}
		return 0
	}
	s.fail(n, key, "expected int, got %s", describe(n))
	return def
}

// Float reads a number (integers accepted).
func (s *Section) Float(key string, def float64) float64 {
	n := s.typed(key, "float")
	if n == nil {
		return def
	}
	if n.Kind == yaml.ScalarNode && (n.Tag == "!!float" || n.Tag == "!!int" || n.Tag == "!!str") {
		if v, err := strconv.ParseFloat(n.Value, 64); err == nil {
			return v
		}
	}
	s.fail(n, key, "expected float, got %s", describe(n))
	return def
}

// IsFloatLiteral reports whether key holds a YAML float (not an int), for
// validators that mirror upstream's strict float type.
func (s *Section) IsFloatLiteral(key string) bool {
	n := s.lookup(key)
	return n != nil && n.Kind == yaml.ScalarNode && n.Tag == "!!float"
}

// Bool reads a boolean.
func (s *Section) Bool(key string, def bool) bool {
	n := s.typed(key, "bool")
	if n == nil {
		return def
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!bool" {
		var v bool
		if err := n.Decode(&v); err == nil {
			return v
		}
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" && n.Style == 0 {
		// YAML 1.1 booleans (PyYAML's safe loader) that yaml.v3 leaves as strings.
		switch n.Value {
		case "yes", "Yes", "YES", "on", "On", "ON":
			return true
		case "no", "No", "NO", "off", "Off", "OFF":
			return false
		}
	}
	s.fail(n, key, "expected bool, got %s", describe(n))
	return def
}

// Limit reads a non-negative-or-any integer limit; absent means unlimited
// (math.MaxInt32).
func (s *Section) Limit(key string) int { return s.Int(key, Unlimited) }

// Unlimited is the value of a limit that is not configured.
const Unlimited = math.MaxInt32

// StringList reads a list of strings.
func (s *Section) StringList(key string) []string {
	n := s.typed(key, "list")
	if n == nil {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		s.fail(n, key, "expected list, got %s", describe(n))
		return nil
	}
	out := make([]string, 0, len(n.Content))
	for i, c := range n.Content {
		if c.Kind != yaml.ScalarNode || c.Tag != "!!str" {
			s.fail(c, fmt.Sprintf("%s[%d]", key, i), "expected str, got %s", describe(c))
			continue
		}
		out = append(out, c.Value)
	}
	return out
}

// StringOrList reads a string or a list of strings; wasString reports
// which form was used.
func (s *Section) StringOrList(key string) (vals []string, wasString bool) {
	n := s.typed(key, "str or list")
	if n == nil {
		return nil, false
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" {
		return []string{n.Value}, true
	}
	if n.Kind != yaml.SequenceNode {
		s.fail(n, key, "expected str or list, got %s", describe(n))
		return nil, false
	}
	return s.StringList(key), false
}

// StringMap reads a mapping of strings to strings.
func (s *Section) StringMap(key string) map[string]string {
	n := s.typed(key, "a dictionary")
	if n == nil {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		s.fail(n, key, "expected a dictionary, got %s", describe(n))
		return nil
	}
	out := make(map[string]string, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if v.Kind != yaml.ScalarNode || v.Tag != "!!str" {
			s.fail(v, key+"."+k.Value, "expected str, got %s", describe(v))
			continue
		}
		out[k.Value] = v.Value
	}
	return out
}

// NumberMap reads a mapping of names to numbers.
func (s *Section) NumberMap(key string) map[string]float64 {
	n := s.typed(key, "a dictionary")
	if n == nil {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		s.fail(n, key, "expected a dictionary, got %s", describe(n))
		return nil
	}
	out := make(map[string]float64, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		f, err := strconv.ParseFloat(v.Value, 64)
		if v.Kind != yaml.ScalarNode || (v.Tag != "!!int" && v.Tag != "!!float") || err != nil {
			s.fail(v, key+"."+k.Value, "expected a number, got %s", describe(v))
			continue
		}
		out[k.Value] = f
	}
	return out
}

// Any decodes a free-form value (mapping, list or scalar).
func (s *Section) Any(key string) any {
	n := s.value(key)
	if n == nil {
		return nil
	}
	d := anyDecoder{budget: maxAnyNodes}
	v, err := d.decode(n, 0)
	if err != nil {
		s.fail(n, key, "%v", err)
		return nil
	}
	return normalize(v)
}

// normalize turns YAML-decoded maps into map[string]any for JSON encoding.
func normalize(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			t[k] = normalize(x)
		}
		return t
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, x := range t {
			m[fmt.Sprint(k)] = normalize(x)
		}
		return m
	case []any:
		for i, x := range t {
			t[i] = normalize(x)
		}
	}
	return v
}

// Map returns the sub-section of key (an empty section when absent).
func (s *Section) Map(key string) *Section {
	n := s.typed(key, "a dictionary")
	sub := NewSection(nil, s.keyPath(key), s.probs)
	if n == nil {
		return sub
	}
	return NewSection(n, s.keyPath(key), s.probs)
}

// List returns the entries of a list of mappings.
func (s *Section) List(key string) []*Section {
	n := s.typed(key, "list")
	if n == nil {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		s.fail(n, key, "expected list, got %s", describe(n))
		return nil
	}
	out := make([]*Section, 0, len(n.Content))
	for i, c := range n.Content {
		if c.Kind == yaml.AliasNode {
			c = c.Alias
		}
		out = append(out, NewSection(c, fmt.Sprintf("%s[%d]", s.keyPath(key), i), s.probs))
	}
	return out
}

// Ignore marks keys as known without reading them.
func (s *Section) Ignore(keys ...string) {
	for _, k := range keys {
		s.seen[k] = true
	}
}

// Finish reports the keys nobody read: errors in strict mode ("extra keys
// not allowed"), warnings otherwise.
func (s *Section) Finish() {
	if s.node == nil {
		return
	}
	reported := map[string]bool{}
	for _, k := range allKeys(s.node, 0) {
		if s.seen[k.Value] || reported[k.Value] {
			continue
		}
		reported[k.Value] = true
		if s.probs.Strict {
			s.fail(k, k.Value, "extra keys not allowed")
		} else {
			s.probs.Warnings = append(s.probs.Warnings, &ConfigError{File: s.probs.File, Line: k.Line, Path: s.keyPath(k.Value), Msg: "unknown key ignored"})
		}
	}
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a dictionary"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!str":
			return fmt.Sprintf("str %q", n.Value)
		case "!!int":
			return "int " + n.Value
		case "!!float":
			return "float " + n.Value
		case "!!bool":
			return "bool " + n.Value
		case "!!null":
			return "null"
		}
		return n.Value
	}
	return "an unexpected value"
}
