package driver

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

func section(t *testing.T, text string, strict bool) (*Section, *Problems) {
	t.Helper()
	var doc yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte(text), &doc))
	p := &Problems{File: "f.yaml", Strict: strict}
	return NewSection(doc.Content[0], "root", p), p
}

func TestSectionGetters(t *testing.T) {
	s, p := section(t, `
str: hello
num: 42
neg: -3
flt: 1.5
yes11: yes
off11: "off"
bool: true
list: [a, b]
map: {a: x, b: y}
nums: {a: 1, b: 2.5}
nested: {k: 7}
items: [{name: one}, {name: two}]
null:
`, false)
	require.Equal(t, "hello", s.String("str", ""))
	require.Equal(t, 42, s.Int("num", 0))
	require.Equal(t, -3, s.Int("neg", 0))
	require.Equal(t, 1.5, s.Float("flt", 0))
	require.Equal(t, 42.0, s.Float("num", 0))
	require.True(t, s.Bool("yes11", false), "YAML 1.1 boolean")
	require.Equal(t, "off", s.String("off11", ""), "quoted stays a string")
	require.True(t, s.Bool("bool", false))
	require.Equal(t, []string{"a", "b"}, s.StringList("list"))
	require.Equal(t, map[string]string{"a": "x", "b": "y"}, s.StringMap("map"))
	require.Equal(t, map[string]float64{"a": 1, "b": 2.5}, s.NumberMap("nums"))
	n := s.Map("nested")
	require.Equal(t, 7, n.Int("k", 0))
	require.Equal(t, "root.nested", n.Path())
	items := s.List("items")
	require.Len(t, items, 2)
	require.Equal(t, "two", items[1].String("name", ""))
	require.Equal(t, "root.items[1]", items[1].Path())
	require.Equal(t, "dflt", s.String("null", "dflt"))
	require.True(t, s.IsNull("null"))
	require.False(t, s.Has("null"))
	require.Equal(t, Unlimited, s.Limit("absent"))
	require.Equal(t, 42, s.Limit("num"))
	require.Equal(t, "42", s.Scalar("num", ""))
	s.Finish()
	require.Empty(t, p.Errors)
	require.Empty(t, p.Warnings)
}

func TestSectionErrors(t *testing.T) {
	s, p := section(t, "a: 1\nb: text\nc: [1]\nd: {x: 1}\ne: 1.5\n", false)
	require.Equal(t, "", s.String("a", ""))
	require.Equal(t, 5, s.Int("b", 5))
	require.Equal(t, []string{}, s.StringList("c"))
	require.Empty(t, s.StringMap("d"))
	require.False(t, s.Bool("e", false))
	require.Equal(t, "", s.RequiredString("missing"))
	got := make([]string, len(p.Errors))
	for i, e := range p.Errors {
		got[i] = e.Error()
	}
	require.Equal(t, []string{
		"f.yaml:1: root.a: expected str, got int 1",
		"f.yaml:2: root.b: expected int, got str \"text\"",
		"f.yaml:3: root.c[0]: expected str, got int 1",
		"f.yaml:4: root.d.x: expected str, got int 1",
		"f.yaml:5: root.e: expected bool, got float 1.5",
		"f.yaml:1: root.missing: required key not provided",
	}, got)
}

func TestSectionStrict(t *testing.T) {
	s, p := section(t, "a: 1\nlist:\nextra: 2\n", true)
	s.Int("a", 0)
	s.List("list")
	s.Finish()
	require.Len(t, p.Errors, 2)
	require.Equal(t, "f.yaml:2: root.list: expected list, got null", p.Errors[0].Error())
	require.Equal(t, "f.yaml:3: root.extra: extra keys not allowed", p.Errors[1].Error())

	s, p = section(t, "a: 1\nlist:\nextra: 2\n", false)
	s.Int("a", 0)
	require.Nil(t, s.List("list"))
	s.Finish()
	require.Empty(t, p.Errors)
	require.Len(t, p.Warnings, 1)
	require.Equal(t, "f.yaml:3: root.extra: unknown key ignored", p.Warnings[0].Error())
}

func TestSectionMergeKeysAndDuplicates(t *testing.T) {
	s, p := section(t, "base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  y: 3\ndup: 1\ndup: 2\n", true)
	m := s.Map("m")
	require.Equal(t, 1, m.Int("x", 0))
	require.Equal(t, 3, m.Int("y", 0))
	require.ElementsMatch(t, []string{"x", "y"}, m.Keys())
	m.Finish()
	require.Equal(t, 2, s.Int("dup", 0), "the last duplicate wins")
	s.Ignore("base")
	s.Finish()
	require.Empty(t, p.Errors)
}

func TestSectionStringOrList(t *testing.T) {
	s, p := section(t, "a: one two\nb: [x, y]\nc: 3\n", false)
	v, str := s.StringOrList("a")
	require.Equal(t, []string{"one two"}, v)
	require.True(t, str)
	v, str = s.StringOrList("b")
	require.Equal(t, []string{"x", "y"}, v)
	require.False(t, str)
	v, _ = s.StringOrList("c")
	require.Nil(t, v)
	require.Len(t, p.Errors, 1)
}

func TestProviderCommon(t *testing.T) {
	s, p := section(t, "name: p\nmax-concurrency: 0\npriority: 5\n", false)
	pc := ParseProviderCommon(s)
	require.Equal(t, "openstack", pc.Driver)
	require.Zero(t, pc.MaxConcurrency)
	require.Equal(t, 5, pc.EffectivePriority(nil))
	require.Len(t, p.Warnings, 1)

	s, _ = section(t, "name: pool\nmax-servers: 3\nnode-attributes: {a: 1}\n", false)
	pool := ParsePoolCommon(s)
	require.Equal(t, 3, pool.MaxServers)
	require.Equal(t, map[string]any{"a": 1}, pool.NodeAttributes)
	require.True(t, math.IsInf(pool.Limits().Get("cores"), 1))
}
