// Package pyjson writes JSON the way Python's json.dumps does with its
// default settings (separators ", " and ": ", ensure_ascii, repr floats),
// and reads JSON leniently (Python's Infinity and NaN tokens are accepted).
package pyjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"sort"
	"strconv"
	"unicode/utf8"
)

// Object appends the members of one JSON object to a buffer in call order.
type Object struct {
	buf   []byte
	count int
}

// NewObject starts an object that appends to dst.
func NewObject(dst []byte) *Object {
	return &Object{buf: append(dst, '{')}
}

// Bytes closes the object and returns the buffer.
func (o *Object) Bytes() []byte { return append(o.buf, '}') }

// Key writes a member name; the next call must write its value.
func (o *Object) Key(k string) *Object {
	if o.count > 0 {
		o.buf = append(o.buf, ", "...)
	}
	o.count++
	o.buf = AppendString(o.buf, k)
	o.buf = append(o.buf, ": "...)
	return o
}

// Str writes a string member.
func (o *Object) Str(k, v string) { o.Key(k); o.buf = AppendString(o.buf, v) }

// NullStr writes a string member, or null when v is empty.
func (o *Object) NullStr(k, v string) {
	o.Key(k)
	if v == "" {
		o.buf = append(o.buf, "null"...)
		return
	}
	o.buf = AppendString(o.buf, v)
}

// Float writes a float member the way Python's repr does.
func (o *Object) Float(k string, v float64) { o.Key(k); o.buf = AppendFloat(o.buf, v) }

// NullFloat writes a float member, or null when v is zero.
func (o *Object) NullFloat(k string, v float64) {
	o.Key(k)
	if v == 0 {
		o.buf = append(o.buf, "null"...)
		return
	}
	o.buf = AppendFloat(o.buf, v)
}

// Int writes an integer member.
func (o *Object) Int(k string, v int64) { o.Key(k); o.buf = strconv.AppendInt(o.buf, v, 10) }

// NullInt writes an integer member, or null when v is nil.
func (o *Object) NullInt(k string, v *int) {
	o.Key(k)
	if v == nil {
		o.buf = append(o.buf, "null"...)
		return
	}
	o.buf = strconv.AppendInt(o.buf, int64(*v), 10)
}

// Bool writes a boolean member.
func (o *Object) Bool(k string, v bool) {
	o.Key(k)
	if v {
		o.buf = append(o.buf, "true"...)
	} else {
		o.buf = append(o.buf, "false"...)
	}
}

// Strings writes a list of strings; a nil list is written as [].
func (o *Object) Strings(k string, v []string) { o.Key(k); o.buf = AppendStrings(o.buf, v) }

// Raw writes a member whose value is already JSON, reformatted in Python
// style; empty raw is written as null.
func (o *Object) Raw(k string, raw []byte) {
	o.Key(k)
	if len(raw) == 0 {
		o.buf = append(o.buf, "null"...)
		return
	}
	b, err := AppendRaw(o.buf, raw)
	if err != nil {
		o.buf = append(o.buf, "null"...)
		return
	}
	o.buf = b
}

// Numbers writes a map of numbers with the given keys first, the rest sorted;
// nil is written as null.
func (o *Object) Numbers(k string, m map[string]float64, first ...string) {
	o.Key(k)
	if m == nil {
		o.buf = append(o.buf, "null"...)
		return
	}
	o.buf = AppendNumbers(o.buf, m, first...)
}

// AppendNumbers appends a JSON object of numbers: the keys in first (when
// present) in that order, then the others sorted. Integral values are
// written as integers.
func AppendNumbers(dst []byte, m map[string]float64, first ...string) []byte {
	keys := make([]string, 0, len(m))
	seen := make(map[string]bool, len(first))
	for _, f := range first {
		if _, ok := m[f]; ok {
			keys = append(keys, f)
			seen[f] = true
		}
	}
	rest := make([]string, 0, len(m))
	for k := range m {
		if !seen[k] {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	keys = append(keys, rest...)
	dst = append(dst, '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ", "...)
		}
		dst = AppendString(dst, k)
		dst = append(dst, ": "...)
		dst = AppendNumber(dst, m[k])
	}
	return append(dst, '}')
}

// AppendNumber writes v as an integer when it is integral and finite, else
// as a Python float. Infinities are clamped to the largest float, since
// standard JSON has no token for them.
func AppendNumber(dst []byte, v float64) []byte {
	if v == math.Trunc(v) && math.Abs(v) < 1e18 {
		return strconv.AppendInt(dst, int64(v), 10)
	}
	return AppendFloat(dst, v)
}

// AppendFloat appends v the way Python's repr(float) formats it.
func AppendFloat(dst []byte, v float64) []byte {
	switch {
	case math.IsNaN(v):
		return append(dst, "null"...)
	case math.IsInf(v, 1):
		v = math.MaxFloat64
	case math.IsInf(v, -1):
		v = -math.MaxFloat64
	}
	a := math.Abs(v)
	if a == 0 || (a >= 1e-4 && a < 1e16) {
		start := len(dst)
		dst = strconv.AppendFloat(dst, v, 'f', -1, 64)
		if bytes.IndexByte(dst[start:], '.') < 0 {
			dst = append(dst, ".0"...)
		}
		return dst
	}
	// Go writes exponents (e+16, e-05) exactly as Python does.
	return strconv.AppendFloat(dst, v, 'e', -1, 64)
}

// AppendStrings appends a JSON list of strings.
func AppendStrings(dst []byte, v []string) []byte {
	dst = append(dst, '[')
	for i, s := range v {
		if i > 0 {
			dst = append(dst, ", "...)
		}
		dst = AppendString(dst, s)
	}
	return append(dst, ']')
}

const hex = "0123456789abcdef"

// AppendString appends s as a JSON string with Python's ensure_ascii escaping.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch c {
			case '"':
				dst = append(dst, '\\', '"')
			case '\\':
				dst = append(dst, '\\', '\\')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				if c < 0x20 || c == 0x7f {
					// Python's ensure_ascii escapes everything outside ' '..'~'.
					dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
				} else {
					dst = append(dst, c)
				}
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if r == utf8.RuneError && size == 1 {
			r = 0xfffd
		}
		if r > 0xffff {
			r -= 0x10000
			dst = appendU(dst, 0xd800+(r>>10))
			dst = appendU(dst, 0xdc00+(r&0x3ff))
			continue
		}
		dst = appendU(dst, r)
	}
	return append(dst, '"')
}

func appendU(dst []byte, r rune) []byte {
	return append(dst, '\\', 'u', hex[(r>>12)&0xf], hex[(r>>8)&0xf], hex[(r>>4)&0xf], hex[r&0xf])
}

// AppendRaw re-emits the JSON value raw in Python style, keeping key order
// and number literals.
func AppendRaw(dst []byte, raw []byte) ([]byte, error) {
	raw = Sanitize(raw)
	if !json.Valid(raw) {
		return dst, errors.New("pyjson: invalid JSON value")
	}
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; c {
		case ' ', '\n', '\t', '\r':
		case ',':
			dst = append(dst, ", "...)
		case ':':
			dst = append(dst, ": "...)
		case '"':
			end, err := skipString(raw, i)
			if err != nil {
				return dst, err
			}
			q := raw[i:end]
			if plainASCII(q) {
				dst = append(dst, q...)
			} else {
				str, err := unquote(q)
				if err != nil {
					return dst, err
				}
				dst = AppendString(dst, str)
			}
			i = end - 1
		default:
			dst = append(dst, c)
		}
	}
	return dst, nil
}

// plainASCII reports whether a string literal is already in Python's form:
// printable ASCII without escapes.
func plainASCII(q []byte) bool {
	for _, c := range q[1 : len(q)-1] {
		if c == '\\' || c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}

// Marshal encodes a Go value (maps, slices, strings, numbers, booleans, nil,
// json.RawMessage) in Python style; map keys are sorted.
func Marshal(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return AppendRaw(nil, b)
}

// MarshalSorted encodes v in Python style with every object's keys sorted,
// as json.dumps(..., sort_keys=True) does.
func MarshalSorted(v any) ([]byte, error) {
	// encoding/json sorts map keys; round-tripping through a generic value
	// gives sorted keys at every level.
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var generic any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&generic); err != nil {
		return nil, err
	}
	b, err = json.Marshal(generic)
	if err != nil {
		return nil, err
	}
	return AppendRaw(nil, b)
}

var (
	tokInf    = []byte("Infinity")
	tokNaN    = []byte("NaN")
	maxFloat  = []byte("1.7976931348623157e+308")
	nullBytes = []byte("null")
)

// Sanitize replaces Python's non-standard Infinity, -Infinity and NaN tokens
// (outside strings) with values standard JSON decoders accept: the largest
// float for the infinities and null for NaN. Input without them is returned
// unchanged.
func Sanitize(data []byte) []byte {
	if !bytes.Contains(data, tokInf) && !bytes.Contains(data, tokNaN) {
		return data
	}
	out := make([]byte, 0, len(data)+16)
	inString := false
	for i := 0; i < len(data); i++ {
		c := data[i]
		if inString {
			out = append(out, c)
			if c == '\\' && i+1 < len(data) {
				i++
				out = append(out, data[i])
			} else if c == '"' {
				inString = false
			}
			continue
		}
		switch {
		case c == '"':
			inString = true
			out = append(out, c)
		case bytes.HasPrefix(data[i:], tokInf):
			out = append(out, maxFloat...)
			i += len(tokInf) - 1
		case bytes.HasPrefix(data[i:], tokNaN):
			out = append(out, nullBytes...)
			i += len(tokNaN) - 1
		default:
			out = append(out, c)
		}
	}
	return out
}
