package zuulsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/nodepool-go/nodepool/internal/pyjson"
)

// member is one top-level key of a JSON object with its raw value.
type member struct {
	key string
	raw json.RawMessage
}

// members is a JSON object that keeps its key order, like a Python dict.
type members []member

// parseMembers splits a JSON object into its members in document order.
func parseMembers(data []byte) (members, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("zuulsim: empty znode data")
	}
	dec := json.NewDecoder(bytes.NewReader(pyjson.Sanitize(data)))
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("zuulsim: invalid JSON: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("zuulsim: expected a JSON object, got %v", tok)
	}
	var out members
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("zuulsim: invalid JSON: %w", err)
		}
		key, _ := kt.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("zuulsim: invalid JSON at key %q: %w", key, err)
		}
		out.set(key, raw)
	}
	return out, nil
}

// get returns the raw value of key, or nil when absent.
func (m members) get(key string) json.RawMessage {
	for _, x := range m {
		if x.key == key {
			return x.raw
		}
	}
	return nil
}

// has reports whether key is present.
func (m members) has(key string) bool { return m.get(key) != nil }

// set assigns key in place, or appends it when absent (Python d[k] = v).
func (m *members) set(key string, raw json.RawMessage) {
	for i := range *m {
		if (*m)[i].key == key {
			(*m)[i].raw = raw
			return
		}
	}
	*m = append(*m, member{key, raw})
}

// setDefault appends key only when absent (Python d.setdefault).
func (m *members) setDefault(key string, raw json.RawMessage) {
	if !m.has(key) {
		m.set(key, raw)
	}
}

// str returns the string value of key ("" when absent, null or not a string).
func (m members) str(key string) string {
	var s string
	if raw := m.get(key); raw != nil {
		_ = json.Unmarshal(raw, &s)
	}
	return s
}

// encode writes the object in order with Python's separators.
func (m members) encode() []byte {
	o := pyjson.NewObject(make([]byte, 0, 1024))
	for _, x := range m {
		o.Raw(x.key, x.raw)
	}
	return o.Bytes()
}

func rawString(s string) json.RawMessage { return pyjson.AppendString(nil, s) }

func rawNullString(s string) json.RawMessage {
	if s == "" {
		return json.RawMessage("null")
	}
	return rawString(s)
}

func rawFloat(f float64) json.RawMessage { return pyjson.AppendFloat(nil, f) }

func rawInt(i int64) json.RawMessage { return strconv.AppendInt(nil, i, 10) }

var rawNull = json.RawMessage("null")

// zuulNodeFirst are the keys Zuul's Node.toDict writes before the keys it
// read, in this order.
var zuulNodeFirst = []string{"id", "state", "hold_job", "comment", "user_data", "tenant_name", "requestor"}

// encodeZuulNode writes a node as Zuul's Node.toDict does: id, state,
// hold_job, comment, user_data, tenant_name, requestor, then every other
// key of the node as read, in read order (unknown keys preserved).
func encodeZuulNode(id string, m members) []byte {
	o := pyjson.NewObject(make([]byte, 0, 1536))
	o.Str("id", id)
	for _, k := range zuulNodeFirst[1:] {
		raw := m.get(k)
		if raw == nil {
			raw = rawNull
		}
		o.Raw(k, raw)
	}
outer:
	for _, x := range m {
		for _, k := range zuulNodeFirst {
			if x.key == k {
				continue outer
			}
		}
		o.Raw(x.key, x.raw)
	}
	return o.Bytes()
}

// requestFields are the values Zuul puts into a new node request.
type requestFields struct {
	NodeTypes        []string
	Requestor        string
	CreatedTime      float64
	Provider         string
	StateTime        float64
	RelativePriority int
	EventID          string
	TenantName       string
	BuildSetUUID     string
	PipelineName     string
	JobUUID          string
	JobName          string
	SpanStartNanos   int64
}

// encodeZuulRequest writes a new request as Zuul's NodeRequest.toDict does
// on submission (see fixtures/node-request-zuul-new.json).
func encodeZuulRequest(f requestFields) []byte {
	var m members
	m.set("requestor_data", requestorData(f))
	m.setDefault("node_types", pyjson.AppendStrings(nil, f.NodeTypes))
	m.setDefault("requestor", rawString(f.Requestor))
	m.setDefault("created_time", rawFloat(f.CreatedTime))
	m.setDefault("provider", rawNullString(f.Provider))
	m.set("state", rawString("requested"))
	m.set("state_time", rawFloat(f.StateTime))
	m.set("relative_priority", rawInt(int64(f.RelativePriority)))
	m.set("event_id", rawNullString(f.EventID))
	m.set("tenant_name", rawNullString(f.TenantName))
	return m.encode()
}

func requestorData(f requestFields) json.RawMessage {
	span := pyjson.NewObject(nil)
	span.Str("name", "RequestNodes")
	span.Int("trace_id", 0)
	span.Int("span_id", 0)
	span.Int("trace_flags", 0)
	span.Int("start_time", f.SpanStartNanos)
	span.Raw("parent", nil)
	o := pyjson.NewObject(nil)
	o.NullStr("build_set_uuid", f.BuildSetUUID)
	o.NullStr("tenant_name", f.TenantName)
	o.NullStr("pipeline_name", f.PipelineName)
	o.NullStr("job_uuid", f.JobUUID)
	o.NullStr("job_name", f.JobName)
	o.Raw("span_info", span.Bytes())
	return o.Bytes()
}
