package status

import (
	"bytes"
	"encoding/json"
	"sort"
	"strconv"
	"strings"

	"github.com/nodepool-go/nodepool/internal/pyjson"
)

// appendValue appends a cell value as Python-style JSON.
func appendValue(dst []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...)
	case string:
		return pyjson.AppendString(dst, x)
	case []string:
		return pyjson.AppendStrings(dst, x)
	case bool:
		if x {
			return append(dst, "true"...)
		}
		return append(dst, "false"...)
	case int:
		return strconv.AppendInt(dst, int64(x), 10)
	case int64:
		return strconv.AppendInt(dst, x, 10)
	case float64:
		return pyjson.AppendFloat(dst, x)
	case json.RawMessage:
		out, err := pyjson.AppendRaw(dst, x)
		if err != nil {
			return append(dst, "null"...)
		}
		return out
	}
	return append(dst, "null"...)
}

// pyRepr renders a JSON value the way Python's repr() prints the decoded
// object: {'k': 'v'}, ['a', 1], True, None.
func pyRepr(raw json.RawMessage) string {
	dec := json.NewDecoder(bytes.NewReader(pyjson.Sanitize(raw)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return string(raw)
	}
	var b strings.Builder
	writeRepr(&b, v, raw)
	return b.String()
}

func writeRepr(b *strings.Builder, v any, raw json.RawMessage) {
	switch x := v.(type) {
	case nil:
		b.WriteString("None")
	case bool:
		if x {
			b.WriteString("True")
		} else {
			b.WriteString("False")
		}
	case json.Number:
		b.WriteString(x.String())
	case string:
		b.WriteString(reprString(x))
	case []any:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			writeRepr(b, e, nil)
		}
		b.WriteByte(']')
	case map[string]any:
		// Python dicts keep insertion order; recover it from the raw text.
		keys := orderedKeys(raw, x)
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(reprString(k))
			b.WriteString(": ")
			writeRepr(b, x[k], nil)
		}
		b.WriteByte('}')
	}
}

func orderedKeys(raw json.RawMessage, m map[string]any) []string {
	var keys []string
	if raw != nil {
		dec := json.NewDecoder(bytes.NewReader(pyjson.Sanitize(raw)))
		if tok, err := dec.Token(); err == nil && tok == json.Delim('{') {
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					break
				}
				var skip json.RawMessage
				if dec.Decode(&skip) != nil {
					break
				}
				if k, ok := kt.(string); ok {
					keys = append(keys, k)
				}
			}
		}
	}
	if len(keys) != len(m) {
		keys = keys[:0]
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
	}
	return keys
}

// reprString quotes s like Python's repr(str).
func reprString(s string) string {
	q := byte('\'')
	if strings.ContainsRune(s, '\'') && !strings.ContainsRune(s, '"') {
		q = '"'
	}
	var b strings.Builder
	b.WriteByte(q)
	for _, r := range s {
		switch {
		case r == rune(q) || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			b.WriteString(`\x`)
			b.WriteString(strconv.FormatInt(int64(r)+0x100, 16)[1:])
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte(q)
	return b.String()
}
