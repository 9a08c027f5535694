package zkclient

import (
	"cmp"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/nodepool-go/nodepool/internal/pyjson"
)

// RequestState is the state of a node request.
type RequestState string

// Node request states.
const (
	RequestRequested RequestState = "requested"
	RequestPending   RequestState = "pending"
	RequestFulfilled RequestState = "fulfilled"
	RequestFailed    RequestState = "failed"
)

// Valid reports whether s is one of the request states of the protocol.
func (s RequestState) Valid() bool {
	switch s {
	case RequestRequested, RequestPending, RequestFulfilled, RequestFailed:
		return true
	}
	return false
}

// Requestor names used by the launcher for requests it creates itself.
const (
	RequestorMinReady         = "NodePool:min-ready"
	RequestorMetastaticPrefix = "NodePool:metastatic:"
)

// NodeRequest is the record stored at /nodepool/requests/<priority>-<seq>.
type NodeRequest struct {
	ID               string          // znode name "<3-char priority>-<10-digit sequence>"
	Version          int32           // znode data version when read
	State            RequestState    // requested, pending, fulfilled or failed
	StateTime        float64         // last state change (Unix seconds)
	DeclinedBy       []string        // ids of the pool workers that declined it
	NodeTypes        []string        // the labels requested, one per node
	Nodes            []string        // the ids of the nodes assigned, in NodeTypes order
	Reuse            bool            // default true
	Requestor        string          // who asked (a Zuul system id, "NodePool:min-ready", ...)
	RequestorData    json.RawMessage // opaque to nodepool, preserved verbatim
	Provider         string          // preferred provider (a hint)
	RelativePriority int             // secondary sort key, lower first
	EventID          string          // correlation id for logs
	CreatedTime      float64         // creation time (Unix seconds)
	TenantName       string          // Zuul tenant; enables tenant quota
	Extra            []Member        // keys written by others, preserved on rewrite
	// Size is the length in bytes of the JSON it was decoded from (0 for
	// a request built in memory).
	Size int
}

// Priority returns the 3-character priority prefix of the request id.
func (r *NodeRequest) Priority() string {
	p, _, _ := strings.Cut(r.ID, "-")
	return p
}

// Sequence returns the sequence part of the request id.
func (r *NodeRequest) Sequence() string {
	_, s, _ := strings.Cut(r.ID, "-")
	return s
}

// DeclinedByID reports whether the pool id is in declined_by.
func (r *NodeRequest) DeclinedByID(id string) bool {
	for _, d := range r.DeclinedBy {
		if d == id {
			return true
		}
	}
	return false
}

// Clone returns a deep copy of the request.
func (r *NodeRequest) Clone() *NodeRequest {
	c := *r
	c.DeclinedBy = append([]string(nil), r.DeclinedBy...)
	c.NodeTypes = append([]string(nil), r.NodeTypes...)
	c.Nodes = append([]string(nil), r.Nodes...)
	c.Extra = append([]Member(nil), r.Extra...)
	return &c
}

// ValidRequestID reports whether id has the form "<3 chars>-<digits>".
func ValidRequestID(id string) bool {
	p, s, ok := strings.Cut(id, "-")
	if !ok || len(p) != 3 || len(s) == 0 || strings.Contains(s, "-") {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// MarshalJSON encodes the request with nodepool's full key set and order.
func (r *NodeRequest) MarshalJSON() ([]byte, error) {
	return r.AppendJSON(make([]byte, 0, 512)), nil
}

// AppendJSON appends the encoded request to dst.
func (r *NodeRequest) AppendJSON(dst []byte) []byte {
	o := pyjson.NewObject(dst)
	o.Str("state", string(r.State))
	o.NullFloat("state_time", r.StateTime)
	o.Strings("declined_by", r.DeclinedBy)
	o.Strings("node_types", r.NodeTypes)
	o.Strings("nodes", r.Nodes)
	o.Bool("reuse", r.Reuse)
	o.NullStr("requestor", r.Requestor)
	o.Raw("requestor_data", r.RequestorData)
	o.NullStr("provider", r.Provider)
	o.Int("relative_priority", int64(r.RelativePriority))
	o.NullStr("event_id", r.EventID)
	o.NullFloat("created_time", r.CreatedTime)
	o.NullStr("tenant_name", r.TenantName)
	appendExtras(o, r.Extra)
	return o.Bytes()
}

// UnmarshalJSON decodes a request payload; absent keys take the protocol's
// read defaults (reuse true) and unknown keys are kept in Extra.
func (r *NodeRequest) UnmarshalJSON(data []byte) error {
	id, version := r.ID, r.Version
	*r = NodeRequest{ID: id, Version: version, Reuse: true}
	haveState := false
	err := eachMember(data, func(key string, raw json.RawMessage) error {
		switch key {
		case "state":
			haveState = true
			var s string
			if err := str(raw, &s); err != nil {
				return err
			}
			r.State = RequestState(s)
		case "state_time":
			return num(raw, &r.StateTime)
		case "declined_by":
			return strList(raw, &r.DeclinedBy)
		case "node_types":
			return strList(raw, &r.NodeTypes)
		case "nodes":
			return strList(raw, &r.Nodes)
		case "reuse":
			return boolean(raw, &r.Reuse, true)
		case "requestor":
			return str(raw, &r.Requestor)
		case "requestor_data":
			r.RequestorData = rawValue(raw)
		case "provider":
			return str(raw, &r.Provider)
		case "relative_priority":
			var f float64
			if err := num(raw, &f); err != nil {
				return err
			}
			r.RelativePriority = int(f)
		case "event_id":
			return str(raw, &r.EventID)
		case "created_time":
			return num(raw, &r.CreatedTime)
		case "tenant_name":
			return str(raw, &r.TenantName)
		default:
			r.Extra = append(r.Extra, Member{Key: key, Value: rawValue(raw)})
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !haveState {
		return fmt.Errorf("request has no state")
	}
	if !r.State.Valid() {
		return fmt.Errorf("unknown request state %q", r.State)
	}
	return nil
}

// DecodeRequest decodes a request payload read from the znode named id.
func DecodeRequest(id string, data []byte) (*NodeRequest, error) {
	r := &NodeRequest{ID: id}
	if err := r.UnmarshalJSON(data); err != nil {
		return nil, err
	}
	r.Size = len(data)
	return r, nil
}

// CompareRequests orders requests as launchers serve them: by the
// priority in the znode name, then by relative_priority, then by
// sequence number. It returns a negative number when a comes first.
func CompareRequests(a, b *NodeRequest) int {
	if c := strings.Compare(a.Priority(), b.Priority()); c != 0 {
		return c
	}
	if c := cmp.Compare(a.RelativePriority, b.RelativePriority); c != 0 {
		return c
	}
	return strings.Compare(a.Sequence(), b.Sequence())
}
