package pyjson

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAppendFloatPythonRepr(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{
		{1690920000.0, "1690920000.0"},
		{1690929342.456789, "1690929342.456789"},
		{1e-05, "1e-05"},
		{2.5e-05, "2.5e-05"},
		{0.0001, "0.0001"},
		{1e16, "1e+16"},
		{1e15, "1000000000000000.0"},
		{1e22, "1e+22"},
		{12345678901234567.0, "1.2345678901234568e+16"},
		{0.1, "0.1"},
		{100, "100.0"},
		{-1.5, "-1.5"},
		{0, "0.0"},
		{math.Copysign(0, -1), "-0.0"},
		{5e-324, "5e-324"},
		{123456789.123456789, "123456789.12345679"},
		{math.MaxFloat64, "1.7976931348623157e+308"},
		// Infinities are clamped and NaN becomes null: a writer must never
		// emit Python's non-standard tokens.
		{math.Inf(1), "1.7976931348623157e+308"},
		{math.Inf(-1), "-1.7976931348623157e+308"},
		{math.NaN(), "null"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			require.Equal(t, tt.want, string(AppendFloat(nil, tt.in)))
		})
	}
}

// TestAppendFloatMatchesPython compares random floats of every magnitude
// with what the real Python's repr produces.
func TestAppendFloatMatchesPython(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var vals []float64
	for i := 0; i < 3000; i++ {
		exp := r.IntN(60) - 30
		v := r.Float64() * math.Pow(10, float64(exp))
		if r.IntN(2) == 0 {
			v = -v
		}
		if r.IntN(10) == 0 {
			v = math.Trunc(v)
		}
		vals = append(vals, v)
	}
	var in strings.Builder
	for _, v := range vals {
		in.WriteString(strconv.FormatUint(math.Float64bits(v), 10))
		in.WriteByte('\n')
	}
	cmd := exec.Command("/usr/bin/python3", "-c", `
import sys, struct
for line in sys.stdin:
    v = struct.unpack("<d", struct.pack("<Q", int(line)))[0]
    print(repr(v))
`)
	cmd.Stdin = strings.NewReader(in.String())
	out, err := cmd.Output()
	require.NoError(t, err, "running /usr/bin/python3")
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	require.Len(t, lines, len(vals))
	for i, v := range vals {
		require.Equal(t, lines[i], string(AppendFloat(nil, v)), "bits %x", math.Float64bits(v))
	}
}

func TestAppendNumber(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{
		{8192, "8192"},
		{0, "0"},
		{-3, "-3"},
		{1.5, "1.5"},
		{1e18, "1e+18"},
		{1e17, "100000000000000000"},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, string(AppendNumber(nil, tt.in)), "%v", tt.in)
	}
}

func TestAppendStringEnsureASCII(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"plain", "abc", `"abc"`},
		{"quote and backslash", `a"b\c`, `"a\"b\\c"`},
		{"short escapes", "\n\r\t\b\f", `"\n\r\t\b\f"`},
		{"control", "\x00\x1f", `"\u0000\u001f"`},
		{"DEL", "\x7f", `"\u007f"`},
		{"no html escaping", "a/b<>&", `"a/b<>&"`},
		{"latin", "é", `"\u00e9"`},
		{"bmp", "\u2028€", `"\u2028\u20ac"`},
		{"surrogate pair", "😀", `"\ud83d\ude00"`},
		{"max rune", "\U0010ffff", `"\udbff\udfff"`},
		{"invalid utf8", "a\xffb", `"a\ufffdb"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := AppendString(nil, tt.in)
			require.Equal(t, tt.want, string(got))
			if tt.name != "invalid utf8" {
				var back string
				require.NoError(t, json.Unmarshal(got, &back))
				require.Equal(t, tt.in, back)
			}
		})
	}
}

// TestAppendStringMatchesPython checks ensure_ascii against json.dumps.
func TestAppendStringMatchesPython(t *testing.T) {
	var all strings.Builder
	for r := rune(0); r < 0x3000; r++ {
		if r >= 0xd800 && r < 0xe000 {
			continue
		}
		all.WriteRune(r)
	}
	all.WriteString("😀\U0001F680\U0010ffff")
	s := all.String()
	cmd := exec.Command("/usr/bin/python3", "-c", `import sys, json; sys.stdout.write(json.dumps(sys.stdin.buffer.read().decode("utf-8")))`)
	cmd.Stdin = strings.NewReader(s)
	out, err := cmd.Output()
	require.NoError(t, err)
	require.Equal(t, string(out), string(AppendString(nil, s)))
}

func TestObjectMembers(t *testing.T) {
	two := 2
	o := NewObject([]byte("x"))
	o.Str("s", "v")
	o.NullStr("ns", "")
	o.NullStr("ns2", "w")
	o.Float("f", 1)
	o.NullFloat("nf", 0)
	o.Int("i", -7)
	o.NullInt("ni", nil)
	o.NullInt("ni2", &two)
	o.Bool("t", true)
	o.Bool("b", false)
	o.Strings("l", nil)
	o.Strings("l2", []string{"a", "b"})
	o.Raw("r", nil)
	o.Raw("r2", []byte(`{"z":1,"a":[1.50,2E3]}`))
	o.Raw("bad", []byte(`{`))
	o.Numbers("n", nil)
	o.Numbers("n2", map[string]float64{"ram": 8192, "cores": 8, "instances": 1, "volumes": 2, "gpu": 0.5}, "cores", "instances", "ram")
	want := `x{"s": "v", "ns": null, "ns2": "w", "f": 1.0, "nf": null, "i": -7, "ni": null, "ni2": 2, ` +
		`"t": true, "b": false, "l": [], "l2": ["a", "b"], "r": null, "r2": {"z": 1, "a": [1.50, 2E3]}, ` +
		`"bad": null, "n": null, "n2": {"cores": 8, "instances": 1, "ram": 8192, "gpu": 0.5, "volumes": 2}}`
	require.Equal(t, want, string(o.Bytes()))
}

func TestAppendRaw(t *testing.T) {
	tests := []struct {
		name, in, want string
		err            bool
	}{
		{"key order kept", `{"b":1,"a":2,"c":{"z":0,"y":1}}`, `{"b": 1, "a": 2, "c": {"z": 0, "y": 1}}`, false},
		{"number literals kept", `[1.0, 1e5, 1E+05, -0.50, 12345678901234567890]`, `[1.0, 1e5, 1E+05, -0.50, 12345678901234567890]`, false},
		{"whitespace normalised", " { \"a\" :\n[ true ,false, null ] } ", `{"a": [true, false, null]}`, false},
		{"strings re-escaped", `["\u00e9", "é", "\/", "<"]`, `["\u00e9", "\u00e9", "/", "<"]`, false},
		{"empty containers", `{"a": {}, "b": []}`, `{"a": {}, "b": []}`, false},
		{"scalar", `"x"`, `"x"`, false},
		{"python infinity", `{"a": Infinity, "b": -Infinity, "c": NaN}`, `{"a": 1.7976931348623157e+308, "b": -1.7976931348623157e+308, "c": null}`, false},
		{"trailing data", `{} {}`, "", true},
		{"truncated", `{"a": [1, 2`, "", true},
		{"empty", ``, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AppendRaw([]byte("p:"), []byte(tt.in))
			if tt.err {
				require.Error(t, err)
				require.Equal(t, "p:", string(got), "dst returned unchanged on error")
				return
			}
			require.NoError(t, err)
			require.Equal(t, "p:"+tt.want, string(got))
		})
	}
}

func TestSanitize(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"untouched", `{"a": 1}`, `{"a": 1}`},
		{"infinity", `[Infinity, -Infinity]`, `[1.7976931348623157e+308, -1.7976931348623157e+308]`},
		{"nan", `{"x": NaN}`, `{"x": null}`},
		{"inside strings", `{"Infinity": "NaN Infinity", "v": NaN}`, `{"Infinity": "NaN Infinity", "v": null}`},
		{"escaped quote in string", `["a\"NaN", NaN]`, `["a\"NaN", null]`},
		{"escaped backslash before quote", `["a\\", NaN]`, `["a\\", null]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Sanitize([]byte(tt.in))
			require.Equal(t, tt.want, string(got))
			require.True(t, json.Valid(got))
		})
	}
	in := []byte(`{"a": 1}`)
	require.Same(t, &in[0], &Sanitize(in)[0], "input without tokens is returned as is")
}

func TestMarshal(t *testing.T) {
	b, err := Marshal(map[string]any{"b": 1, "a": []string{"é"}, "c": nil, "d": json.RawMessage(`{"z":1,"y":2}`)})
	require.NoError(t, err)
	require.Equal(t, `{"a": ["\u00e9"], "b": 1, "c": null, "d": {"z": 1, "y": 2}}`, string(b))

	b, err = MarshalSorted(map[string]any{"b": 1, "a": json.RawMessage(`{"z":1,"y":2.50}`)})
	require.NoError(t, err)
	require.Equal(t, `{"a": {"y": 2.50, "z": 1}, "b": 1}`, string(b))

	_, err = Marshal(func() {})
	require.Error(t, err)
}

// FuzzSanitizeAppendRaw: AppendRaw never panics, its output is valid JSON
// equal in value to the (sanitized) input, and it is a fixed point.
func FuzzSanitizeAppendRaw(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		s := Sanitize(data)
		out, err := AppendRaw(nil, data)
		if err != nil {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("invalid output %q from %q", out, data)
		}
		if !bytes.Equal(out, ascii(out)) {
			t.Fatalf("non-ASCII output %q", out)
		}
		var a, b any
		if err := decodeNumbers(s, &a); err != nil {
			// encoding/json's Decoder accepted it token by token; a
			// whole-value decode must agree.
			t.Fatalf("AppendRaw accepted %q but decode fails: %v", data, err)
		}
		if err := decodeNumbers(out, &b); err != nil {
			t.Fatalf("output %q does not decode: %v", out, err)
		}
		if !jsonEqual(a, b) {
			t.Fatalf("value changed: %q -> %q", data, out)
		}
		again, err := AppendRaw(nil, out)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("not a fixed point: %q -> %q (%v)", out, again, err)
		}
	})
}

func ascii(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c < 0x80 {
			out = append(out, c)
		}
	}
	return out
}

func decodeNumbers(b []byte, v *any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(v)
}

// jsonEqual compares decoded values; for objects with duplicate keys the
// last value wins on both sides, as in every JSON reader.
func jsonEqual(a, b any) bool {
	ab, _ := json.Marshal(a)
	bb, _ := json.Marshal(b)
	return bytes.Equal(ab, bb)
}
