package pyjson

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// ForEachMember calls fn for each member of the JSON object in data, in
// document order, with the member's raw value. It is a small hand-written
// scanner (the decoders of every znode use it on the hot path); values are
// delimited, not validated — callers decode or validate the ones they use.
// Python's Infinity/NaN tokens are accepted as literals.
func ForEachMember(data []byte, fn func(key string, raw []byte) error) error {
	i := skipWS(data, 0)
	if i >= len(data) || data[i] != '{' {
		return errors.New("expected a JSON object")
	}
	i = skipWS(data, i+1)
	if i < len(data) && data[i] == '}' {
		if skipWS(data, i+1) != len(data) {
			return errors.New("trailing data after JSON object")
		}
		return nil
	}
	for {
		if i >= len(data) || data[i] != '"' {
			return fmt.Errorf("expected an object key at offset %d", i)
		}
		end, err := skipString(data, i)
		if err != nil {
			return err
		}
		key, err := unquote(data[i:end])
		if err != nil {
			return err
		}
		i = skipWS(data, end)
		if i >= len(data) || data[i] != ':' {
			return fmt.Errorf("expected ':' at offset %d", i)
		}
		i = skipWS(data, i+1)
		vend, err := skipValue(data, i)
		if err != nil {
			return err
		}
		if err := fn(key, data[i:vend]); err != nil {
			return err
		}
		i = skipWS(data, vend)
		if i >= len(data) {
			return errors.New("unterminated JSON object")
		}
		switch data[i] {
		case ',':
			i = skipWS(data, i+1)
		case '}':
			if skipWS(data, i+1) != len(data) {
				return errors.New("trailing data after JSON object")
			}
			return nil
		default:
			return fmt.Errorf("expected ',' or '}' at offset %d", i)
		}
	}
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\t' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] == '"'.
func skipString(b []byte, i int) (int, error) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1, nil
		}
	}
	return 0, errors.New("unterminated JSON string")
}

// unquote decodes a JSON string literal, fast when it has no escapes.
func unquote(q []byte) (string, error) {
	inner := q[1 : len(q)-1]
	simple := true
	for _, c := range inner {
		if c == '\\' || c < 0x20 {
			simple = false
			break
		}
	}
	if simple && utf8.Valid(inner) {
		return string(inner), nil
	}
	var s string
	if err := json.Unmarshal(q, &s); err != nil {
		return "", err
	}
	return s, nil
}

// UnquoteString decodes a raw JSON string value.
func UnquoteString(raw []byte) (string, error) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", errors.New("not a JSON string")
	}
	return unquote(raw)
}

// skipValue returns the index after the JSON value starting at b[i].
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errors.New("missing JSON value")
	}
	switch c := b[i]; {
	case c == '"':
		return skipString(b, i)
	case c == '{' || c == '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, err := skipString(b, j)
				if err != nil {
					return 0, err
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, errors.New("unterminated JSON container")
	default:
		j := i
		for j < len(b) {
			switch b[j] {
			case ',', '}', ']', ' ', '\n', '\t', '\r':
				if j == i {
					return 0, fmt.Errorf("missing JSON value at offset %d", i)
				}
				return j, nil
			}
			j++
		}
		if j == i {
			return 0, errors.New("missing JSON value")
		}
		return j, nil
	}
}
