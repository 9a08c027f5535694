// Package cloudutil holds helpers the cloud drivers share: expanding
// request templates (dynamic tags and properties), a shared
// stale-while-revalidate listing cache, and a call-spacing rate limiter.
package cloudutil

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/nodepool-go/nodepool/driver"
)

// FormatRequest expands a dynamic-instance-properties template, a Python
// str.format string whose fields are {request.<attr>} (optionally indexed,
// {request.requestor_data[key]}); {{ and }} are literal braces.
func FormatRequest(tmpl string, req driver.RequestInfo) (string, error) {
	var b strings.Builder
	for i := 0; i < len(tmpl); i++ {
		c := tmpl[i]
		switch {
		case c == '{' && i+1 < len(tmpl) && tmpl[i+1] == '{':
			b.WriteByte('{')
			i++
		case c == '}' && i+1 < len(tmpl) && tmpl[i+1] == '}':
			b.WriteByte('}')
			i++
		case c == '}':
			return "", fmt.Errorf("single '}' encountered in format string %q", tmpl)
		case c == '{':
			end := strings.IndexByte(tmpl[i:], '}')
			if end < 0 {
				return "", fmt.Errorf("expected '}' before end of string in %q", tmpl)
			}
			v, err := requestField(tmpl[i+1:i+end], req)
			if err != nil {
				return "", err
			}
			b.WriteString(v)
			i += end
		default:
			b.WriteByte(c)
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
		return "", fmt.Errorf("unknown field %q (only request attributes are available)", field)
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
	case "labels", "node_types":
		l := make([]any, len(req.Labels))
		for i, s := range req.Labels {
			l[i] = s
		}
		v = l
	case "requestor":
		v = req.Requestor
	case "relative_priority":
		v = float64(req.RelativePriority)
	case "event_id":
		v = req.EventID
	case "tenant_name":
		v = req.TenantName
	case "requestor_data":
		var d any
		if len(req.RequestorData) > 0 {
			if err := json.Unmarshal(req.RequestorData, &d); err != nil {
				return "", fmt.Errorf("requestor_data: %w", err)
			}
		}
		v = d
	default:
		return "", fmt.Errorf("request has no attribute %q", name)
	}
	for _, k := range index {
		switch t := v.(type) {
		case map[string]any:
			x, ok := t[k]
			if !ok {
				return "", fmt.Errorf("key %q not found in request.%s", k, name)
			}
			v = x
		case []any:
			n, err := strconv.Atoi(k)
			if err != nil || n < 0 || n >= len(t) {
				return "", fmt.Errorf("index %q out of range in request.%s", k, name)
			}
			v = t[n]
		default:
			return "", fmt.Errorf("request.%s is not subscriptable", name)
		}
	}
	return pyStr(v), nil
}

// pyStr renders a JSON value as Python's str() would.
func pyStr(v any) string {
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
	case float64:
		if t == float64(int64(t)) {
			return strconv.FormatInt(int64(t), 10)
		}
		return strconv.FormatFloat(t, 'g', -1, 64)
	case []any:
		parts := make([]string, len(t))
		for i, e := range t {
			if s, ok := e.(string); ok {
				parts[i] = "'" + s + "'"
			} else {
				parts[i] = pyStr(e)
			}
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case map[string]any:
		b, _ := json.Marshal(t)
		return string(b)
	}
	return fmt.Sprint(v)
}
