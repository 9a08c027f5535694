package azure

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"
	"strings"

	"github.com/nodepool-go/nodepool/driver"
)

// formatRequest expands a dynamic-tags template: a Python str.format
// string whose fields are {request.<attribute>} (id, labels, requestor,
// requestor_data, relative_priority, event_id, tenant_name), optionally
// indexed ({request.labels[0]}, {request.requestor_data[key]}); {{ and }}
// are literal braces.
func formatRequest(tmpl string, req driver.RequestInfo) (string, error) {
	var b strings.Builder
	for i := 0; i < len(tmpl); i++ {
		ch := tmpl[i]
		switch {
		case (ch == '{' || ch == '}') && i+1 < len(tmpl) && tmpl[i+1] == ch:
			b.WriteByte(ch)
			i++
		case ch == '}':
			return "", fmt.Errorf("single '}' encountered in format string")
		case ch == '{':
			end := strings.IndexByte(tmpl[i:], '}')
			if end < 0 {
				return "", fmt.Errorf("expected '}' before end of string")
			}
			v, err := requestField(tmpl[i+1:i+end], req)
			if err != nil {
				return "", err
			}
			b.WriteString(v)
			i += end
		default:
			b.WriteByte(ch)
		}
	}
	return b.String(), nil
}

func requestField(field string, req driver.RequestInfo) (string, error) {
	if i := strings.IndexAny(field, "!:"); i >= 0 {
		field = field[:i]
	}
	name, ok := strings.CutPrefix(field, "request.")
	if !ok {
		return "", fmt.Errorf("unknown field %q", field)
	}
	var index []string
	if i := strings.IndexByte(name, '['); i >= 0 {
		for _, part := range strings.Split(name[i+1:], "[") {
			index = append(index, strings.TrimSuffix(part, "]"))
		}
		name = name[:i]
	}
	var v any
	switch name {
	case "id":
		v = req.ID
	case "labels":
		v = req.Labels
	case "requestor":
		v = req.Requestor
	case "relative_priority":
		v = req.RelativePriority
	case "event_id":
		v = req.EventID
	case "tenant_name":
		v = req.TenantName
	case "requestor_data":
		if len(req.RequestorData) > 0 {
			if err := json.Unmarshal(req.RequestorData, &v); err != nil {
				return "", fmt.Errorf("requestor_data: %w", err)
			}
		}
	default:
		return "", fmt.Errorf("request has no attribute %q", name)
	}
	for _, k := range index {
		switch t := v.(type) {
		case []string:
			n, err := strconv.Atoi(k)
			if err != nil || n < 0 || n >= len(t) {
				return "", fmt.Errorf("index %q out of range", k)
			}
			v = t[n]
		case []any:
			n, err := strconv.Atoi(k)
			if err != nil || n < 0 || n >= len(t) {
				return "", fmt.Errorf("index %q out of range", k)
			}
			v = t[n]
		case map[string]any:
			x, ok := t[k]
			if !ok {
				return "", fmt.Errorf("key %q not found", k)
			}
			v = x
		default:
			return "", fmt.Errorf("%s is not indexable", name)
		}
	}
	return pyString(v), nil
}

// pyString renders a value as Python's str() would.
func pyString(v any) string {
	switch t := v.(type) {
	case nil:
		return "None"
	case string:
		return t
	case bool:
		if t {
			return "True"
		}
		return "False"
	case []string:
		q := make([]string, len(t))
		for i, s := range t {
			q[i] = "'" + s + "'"
		}
		return "[" + strings.Join(q, ", ") + "]"
	}
	return fmt.Sprint(v)
}

// generatePassword returns 64 random letters and digits with at least one
// lower-case letter, one upper-case letter and one digit.
func generatePassword() string {
	const lower, upper, digits = "abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789"
	const chars = lower + upper + digits
	for {
		b := make([]byte, 64)
		for i := range b {
			n, _ := rand.Int(rand.Reader, big.NewInt(int64(len(chars))))
			b[i] = chars[n.Int64()]
		}
		s := string(b)
		if strings.ContainsAny(s, lower) && strings.ContainsAny(s, upper) && strings.ContainsAny(s, digits) {
			return s
		}
	}
}
