package zkclient

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/nodepool-go/nodepool/internal/pyjson"
)

// Member is one key of a stored JSON object that this package does not
// model; it is kept so that a read-modify-write preserves what another
// writer (Zuul, a newer nodepool) added.
type Member struct {
	Key   string          // the JSON key
	Value json.RawMessage // its value, verbatim
}

// ErrEmpty reports a znode whose data is the empty byte string, which every
// reader treats as "no object".
var ErrEmpty = errors.New("znode has no data")

// MaxPayload is the largest znode payload the decoders accept (ZooKeeper's
// own default jute.maxbuffer is 1 MiB).
const MaxPayload = 1 << 20

// eachMember calls fn for every top-level member of the JSON object in
// data, in document order.
func eachMember(data []byte, fn func(key string, raw json.RawMessage) error) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return ErrEmpty
	}
	if len(data) > MaxPayload {
		return fmt.Errorf("payload of %d bytes exceeds %d", len(data), MaxPayload)
	}
	data = pyjson.Sanitize(data)
	if !json.Valid(data) {
		return fmt.Errorf("invalid JSON: %s", truncate(data))
	}
	return pyjson.ForEachMember(data, func(key string, raw []byte) error {
		if err := fn(key, raw); err != nil {
			return fmt.Errorf("key %q: %w", key, err)
		}
		return nil
	})
}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(raw) == "null"
}

// str reads a string-or-null; null reads as "".
func str(raw json.RawMessage, dst *string) error {
	if isNull(raw) {
		*dst = ""
		return nil
	}
	if raw[0] != '"' {
		return fmt.Errorf("expected string, got %s", truncate(raw))
	}
	v, err := pyjson.UnquoteString(raw)
	if err != nil {
		return err
	}
	*dst = v
	return nil
}

// num reads a number-or-null; null reads as 0. Numeric strings are accepted.
func num(raw json.RawMessage, dst *float64) error {
	if isNull(raw) {
		*dst = 0
		return nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return err
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("expected number, got %s", truncate(raw))
		}
		*dst = f
		return nil
	}
	f, err := jsonFloat(raw)
	if err != nil {
		return fmt.Errorf("expected number, got %s", truncate(raw))
	}
	*dst = f
	return nil
}

// jsonFloat parses a JSON number. Callers hold a value of a document
// already checked to be valid JSON, so a value that starts like a number
// is one, in a syntax strconv accepts.
func jsonFloat(raw []byte) (float64, error) {
	if c := raw[0]; c != '-' && (c < '0' || c > '9') {
		return 0, errors.New("not a number")
	}
	return strconv.ParseFloat(string(raw), 64)
}

// optInt reads an integer-or-null the way Python's int() coerces it:
// floats are truncated, numeric strings parsed; lenient callers map other
// values to 0.
func optInt(raw json.RawMessage, dst **int) error {
	if isNull(raw) {
		*dst = nil
		return nil
	}
	var f float64
	if err := num(raw, &f); err != nil {
		return err
	}
	v := int(f)
	*dst = &v
	return nil
}

// pyInt coerces a non-null JSON value the way Python's int() does: numbers
// are truncated, strings must hold a decimal integer (surrounding
// whitespace allowed), booleans are 0/1. ok is false (and the value 0)
// where int() raises, including for values outside the int64 range.
func pyInt(raw json.RawMessage) (v int, ok bool) {
	switch {
	case len(raw) == 0:
		return 0, false
	case raw[0] == '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return 0, false
		}
		i, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return 0, false
		}
		return int(i), true
	case string(raw) == "true":
		return 1, true
	case string(raw) == "false":
		return 0, true
	}
	f, err := jsonFloat(raw)
	if err != nil || math.IsNaN(f) || math.Abs(f) >= 1<<63 {
		return 0, false
	}
	return int(f), true
}

func strList(raw json.RawMessage, dst *[]string) error {
	if isNull(raw) {
		*dst = nil
		return nil
	}
	if raw[0] != '[' {
		return fmt.Errorf("expected list, got %s", truncate(raw))
	}
	return json.Unmarshal(raw, dst)
}

func boolean(raw json.RawMessage, dst *bool, def bool) error {
	if isNull(raw) {
		*dst = def
		return nil
	}
	switch string(raw) {
	case "true":
		*dst = true
	case "false":
		*dst = false
	default:
		return fmt.Errorf("expected boolean, got %s", truncate(raw))
	}
	return nil
}

func rawValue(raw json.RawMessage) json.RawMessage {
	if isNull(raw) || !json.Valid(raw) {
		return nil
	}
	return append(json.RawMessage(nil), raw...)
}

func numbers(raw json.RawMessage, dst *map[string]float64) error {
	if isNull(raw) {
		*dst = nil
		return nil
	}
	var m map[string]*float64
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("expected an object of numbers, got %s", truncate(raw))
	}
	out := make(map[string]float64, len(m))
	for k, v := range m {
		if v != nil {
			out[k] = *v
		}
	}
	*dst = out
	return nil
}

func truncate(raw []byte) string {
	if len(raw) > 40 {
		return string(raw[:40]) + "..."
	}
	return string(raw)
}

func appendExtras(o *pyjson.Object, extras []Member, skip ...string) {
outer:
	for _, m := range extras {
		for _, s := range skip {
			if m.Key == s {
				continue outer
			}
		}
		o.Raw(m.Key, m.Value)
	}
}
