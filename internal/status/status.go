// Package status produces the status listings shared by the nodepool CLI
// and the web status API: node list, dib image list,
// image status, image (upload) list, request list and label list. Each
// producer returns a Table of rows with the spec's JSON field names and
// column titles, which renders as a PrettyTable text table or as JSON.
package status

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nodepool-go/nodepool/internal/pyjson"
	"github.com/nodepool-go/nodepool/internal/table"
	"github.com/nodepool-go/nodepool/quota"
	"github.com/nodepool-go/nodepool/zkclient"
)

// Column is one field of a listing: its JSON key and its column title.
type Column struct {
	Field string
	Title string
}

// Table is the result of a producer. Cell values are nil, string,
// []string, bool, int, int64 or json.RawMessage.
type Table struct {
	Columns []Column
	Rows    [][]any
	// Now is the reference time for rendering integer ages as DD:HH:MM:SS.
	Now time.Time
}

// Fields returns the table's field names in column order.
func (t *Table) Fields() []string {
	out := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		out[i] = c.Field
	}
	return out
}

// Select returns a table with only the named fields, kept in the table's
// own column order; unknown names are ignored.
func (t *Table) Select(fields []string) *Table {
	want := make(map[string]bool, len(fields))
	for _, f := range fields {
		want[f] = true
	}
	var idx []int
	out := &Table{Now: t.Now}
	for i, c := range t.Columns {
		if want[c.Field] {
			idx = append(idx, i)
			out.Columns = append(out.Columns, c)
		}
	}
	out.Rows = make([][]any, len(t.Rows))
	for r, row := range t.Rows {
		nr := make([]any, len(idx))
		for j, i := range idx {
			nr[j] = row[i]
		}
		out.Rows[r] = nr
	}
	return out
}

// Text renders the table as PrettyTable text without a trailing newline.
func (t *Table) Text() string {
	headers := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		headers[i] = c.Title
	}
	rows := make([][]string, len(t.Rows))
	for r, row := range t.Rows {
		cells := make([]string, len(t.Columns))
		for i, c := range t.Columns {
			cells[i] = t.cell(c.Field, row[i])
		}
		rows[r] = cells
	}
	return table.Render(headers, rows)
}

func (t *Table) cell(field string, v any) string {
	if field == "age" || strings.HasSuffix(field, "_age") {
		switch x := v.(type) {
		case int:
			return table.Age(t.Now, float64(x))
		case int64:
			return table.Age(t.Now, float64(x))
		case float64:
			return table.Age(t.Now, float64(int64(x)))
		}
	}
	return CellText(v)
}

// CellText converts a value to its table text: null → "", lists joined with
// ",", booleans True/False, JSON mappings in Python repr form.
func CellText(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case []string:
		return strings.Join(x, ",")
	case bool:
		if x {
			return "True"
		}
		return "False"
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return string(pyjson.AppendFloat(nil, x))
	case json.RawMessage:
		return pyRepr(x)
	}
	return ""
}

// JSON renders the rows as a JSON array of objects (every column, Python
// json.dumps separators and escaping).
func (t *Table) JSON() []byte {
	out := []byte{'['}
	for r, row := range t.Rows {
		if r > 0 {
			out = append(out, ", "...)
		}
		out = append(out, '{')
		for i, c := range t.Columns {
			if i > 0 {
				out = append(out, ", "...)
			}
			out = pyjson.AppendString(out, c.Field)
			out = append(out, ": "...)
			out = appendValue(out, row[i])
		}
		out = append(out, '}')
	}
	return append(out, ']')
}

// Source produces listings from ZooKeeper.
type Source struct {
	ZK *zkclient.Client
	// Now returns the current time (default time.Now).
	Now func() time.Time
}

func (s *Source) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func nullStr(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func strs(v []string) []string {
	if v == nil {
		return []string{}
	}
	return v
}

func rawOrNil(r json.RawMessage) any {
	t := strings.TrimSpace(string(r))
	if t == "" || t == "null" {
		return nil
	}
	return json.RawMessage(t)
}

// NodeColumns are the node list's 21 columns.
var NodeColumns = []Column{
	{"id", "ID"}, {"provider", "Provider"}, {"label", "Label"},
	{"server_id", "Server ID"}, {"public_ipv4", "Public IPv4"}, {"ipv6", "IPv6"},
	{"state", "State"}, {"age", "Age"}, {"locked", "Locked"}, {"pool", "Pool"},
	{"hostname", "Hostname"}, {"private_ipv4", "Private IPv4"}, {"AZ", "AZ"},
	{"username", "Username"}, {"connection_port", "Port"}, {"launcher", "Launcher"},
	{"allocated_to", "Allocated To"}, {"hold_job", "Hold Job"}, {"comment", "Comment"},
	{"user_data", "User Data"}, {"driver_data", "Driver Data"},
}

// NodeBasicFields are the 9 columns of `nodepool list` without --detail.
var NodeBasicFields = []string{"id", "provider", "label", "server_id", "public_ipv4", "ipv6", "state", "age", "locked"}

// NodeList lists every node sorted by id, or only nodeID when it is not
// empty (an empty table when it does not exist).
func (s *Source) NodeList(ctx context.Context, nodeID string) (*Table, error) {
	now := s.now()
	var nodes []*zkclient.Node
	if nodeID != "" {
		n, err := s.ZK.GetNode(ctx, nodeID)
		switch {
		case err == nil:
			nodes = append(nodes, n)
		case errors.Is(err, zkclient.ErrNoNode), errors.Is(err, zkclient.ErrEmpty):
		default:
			return nil, err
		}
	} else {
		var err error
		if nodes, err = s.ZK.Nodes(ctx, nil); err != nil {
			return nil, err
		}
	}
	t := &Table{Columns: NodeColumns, Now: now}
	for _, n := range nodes {
		locked, err := s.ZK.IsLocked(ctx, zkclient.NodeLockPath(n.ID))
		if err != nil {
			return nil, err
		}
		lk := "unlocked"
		if locked {
			lk = "locked"
		}
		var port any
		var p int
		if err := json.Unmarshal(n.ConnectionPort, &p); err == nil {
			port = p
		} else {
			port = rawOrNil(n.ConnectionPort)
		}
		t.Rows = append(t.Rows, []any{
			n.ID, nullStr(n.Provider), strs(n.Type), nullStr(n.ExternalID),
			nullStr(n.PublicIPv4), nullStr(n.PublicIPv6), string(n.State),
			table.Age(now, n.StateTime), lk, nullStr(n.Pool), nullStr(n.Hostname),
			nullStr(n.PrivateIPv4), nullStr(n.AZ), nullStr(n.Username), port,
			nullStr(n.Launcher), nullStr(n.AllocatedTo), nullStr(n.HoldJob),
			nullStr(n.Comment), rawOrNil(n.UserData), rawOrNil(n.DriverData),
		})
	}
	return t, nil
}

// DibImageColumns are the dib image list's columns.
var DibImageColumns = []Column{
	{"id", "ID"}, {"image", "Image"}, {"builder", "Builder"},
	{"formats", "Formats"}, {"state", "State"}, {"age", "Age"},
}

// DibImageList lists every build of every image (images by name, builds
// by state_time).
func (s *Source) DibImageList(ctx context.Context) (*Table, error) {
	t := &Table{Columns: DibImageColumns, Now: s.now()}
	images, err := s.ZK.ImageNames(ctx)
	if err != nil {
		return nil, err
	}
	for _, img := range images {
		paused, err := s.ZK.ImagePaused(ctx, img)
		if err != nil {
			return nil, err
		}
		builds, err := s.builds(ctx, img)
		if err != nil {
			return nil, err
		}
		for _, b := range builds {
			state := string(b.State)
			if paused {
				state = "paused"
			}
			t.Rows = append(t.Rows, []any{
				img + "-" + b.ID, img, nullStr(b.Builder), strs(b.Formats), state, int64(b.StateTime),
			})
		}
	}
	return t, nil
}

func (s *Source) builds(ctx context.Context, image string) ([]*zkclient.ImageBuild, error) {
	builds, err := s.ZK.Builds(ctx, image)
	if err != nil {
		return nil, err
	}
	sort.SliceStable(builds, func(i, j int) bool {
		if builds[i].StateTime != builds[j].StateTime {
			return builds[i].StateTime < builds[j].StateTime
		}
		return builds[i].ID < builds[j].ID
	})
	return builds, nil
}

// ImageStatusColumns are the image status columns.
var ImageStatusColumns = []Column{
	{"image", "Image"}, {"paused", "Paused"}, {"build_request", "Build Request"},
	{"build_request_age", "Build Request Age"},
}

// ImageStatus lists every image with its pause flag and build request.
func (s *Source) ImageStatus(ctx context.Context) (*Table, error) {
	t := &Table{Columns: ImageStatusColumns, Now: s.now()}
	images, err := s.ZK.ImageNames(ctx)
	if err != nil {
		return nil, err
	}
	for _, img := range images {
		paused, err := s.ZK.ImagePaused(ctx, img)
		if err != nil {
			return nil, err
		}
		var req, reqAge any
		ok, st, err := s.ZK.BuildRequested(ctx, img)
		if err != nil {
			return nil, err
		}
		if ok {
			reqAge = st.Ctime / 1000
			req = "pending"
			building, err := s.building(ctx, img)
			if err != nil {
				return nil, err
			}
			if building {
				req = "building"
			}
		}
		t.Rows = append(t.Rows, []any{img, paused, req, reqAge})
	}
	return t, nil
}

// building reports whether the image's build lock has a contender and the
// newest build znode was created after the lock directory.
func (s *Source) building(ctx context.Context, img string) (bool, error) {
	ok, lst, err := s.ZK.Exists(ctx, zkclient.BuildLockPath(img))
	if err != nil || !ok || lst.NumChildren == 0 {
		return false, err
	}
	ids, err := s.ZK.BuildIDs(ctx, img)
	if err != nil {
		return false, err
	}
	var newest int64
	for _, id := range ids {
		ok, st, err := s.ZK.Exists(ctx, zkclient.BuildPath(img, id))
		if err != nil {
			return false, err
		}
		if ok && st.Ctime > newest {
			newest = st.Ctime
		}
	}
	return newest > lst.Ctime, nil
}

// ImageUploadColumns are the image (upload) list columns.
var ImageUploadColumns = []Column{
	{"id", "Build ID"}, {"upload_id", "Upload ID"}, {"provider", "Provider"},
	{"image", "Image"}, {"external_name", "Provider Image Name"},
	{"external_id", "Provider Image ID"}, {"state", "State"}, {"age", "Age"},
}

// ImageList lists every upload of every build of every image (images by
// name, builds by state_time, providers by name, uploads by id).
func (s *Source) ImageList(ctx context.Context) (*Table, error) {
	t := &Table{Columns: ImageUploadColumns, Now: s.now()}
	images, err := s.ZK.ImageNames(ctx)
	if err != nil {
		return nil, err
	}
	for _, img := range images {
		builds, err := s.builds(ctx, img)
		if err != nil {
			return nil, err
		}
		for _, b := range builds {
			provs, err := s.ZK.BuildProviders(ctx, img, b.ID)
			if err != nil {
				return nil, err
			}
			for _, p := range provs {
				ups, err := s.ZK.Uploads(ctx, img, b.ID, p)
				if err != nil {
					return nil, err
				}
				for _, u := range ups {
					t.Rows = append(t.Rows, []any{
						b.ID, u.ID, p, img, nullStr(u.ExternalName), nullStr(u.ExternalID),
						string(u.State), int64(u.StateTime),
					})
				}
			}
		}
	}
	return t, nil
}

// RequestColumns are the request list columns.
var RequestColumns = []Column{
	{"id", "Request ID"}, {"relative_priority", "Priority"}, {"state", "State"},
	{"requestor", "Requestor"}, {"node_types", "Node Types"}, {"nodes", "Nodes"},
	{"declined_by", "Declined By"}, {"event_id", "Event ID"},
}

// RequestList lists every node request sorted by id.
func (s *Source) RequestList(ctx context.Context) (*Table, error) {
	t := &Table{Columns: RequestColumns, Now: s.now()}
	reqs, err := s.ZK.Requests(ctx, nil)
	if err != nil {
		return nil, err
	}
	for _, r := range reqs {
		t.Rows = append(t.Rows, []any{
			r.ID, r.RelativePriority, string(r.State), nullStr(r.Requestor),
			strs(r.NodeTypes), strs(r.Nodes), strs(r.DeclinedBy), nullStr(r.EventID),
		})
	}
	return t, nil
}

// LabelColumns are the label list columns.
var LabelColumns = []Column{{"label", "Label"}}

// LabelList lists the sorted union of the supported labels of every
// registered pool component.
func (s *Source) LabelList(ctx context.Context) (*Table, error) {
	t := &Table{Columns: LabelColumns, Now: s.now()}
	comps, err := s.ZK.Components(ctx, zkclient.KindPool)
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	for _, c := range comps {
		for _, l := range c.SupportedLabels {
			set[l] = true
		}
	}
	labels := make([]string, 0, len(set))
	for l := range set {
		labels = append(labels, l)
	}
	sort.Strings(labels)
	for _, l := range labels {
		t.Rows = append(t.Rows, []any{l})
	}
	return t, nil
}

// ExplainColumns are the columns of the request explanation listing (a Go
// addition: upstream has no equivalent).
var ExplainColumns = []Column{
	{"request", "Request ID"}, {"state", "State"}, {"pool", "Pool"}, {"status", "Status"},
	{"reason", "Reason"}, {"limit", "Limit"}, {"used", "Used"}, {"needed", "Needed"}, {"max", "Max"},
	{"behind", "Queued Behind"}, {"age", "Age"},
}

// RequestExplain says, for every waiting request (or only requestID when
// given), what each launcher pool is doing about it: declined (and why),
// paused on which limit with the numbers, or deferred and behind what.
// A request no pool has looked at yet is listed with status "unseen".
func (s *Source) RequestExplain(ctx context.Context, requestID string) (*Table, error) {
	t := &Table{Columns: ExplainColumns, Now: s.now()}
	reqs, err := s.ZK.Requests(ctx, nil)
	if err != nil {
		return nil, err
	}
	expl, err := s.ZK.Explanations(ctx)
	if err != nil {
		return nil, err
	}
	num := func(limit string, v float64) any {
		if limit == "" {
			return nil
		}
		return quota.FormatNumber(v)
	}
	for _, r := range reqs {
		if requestID != "" && r.ID != requestID {
			continue
		}
		if requestID == "" && (r.State == zkclient.RequestFulfilled || r.State == zkclient.RequestFailed) {
			continue
		}
		es := expl[r.ID]
		if len(es) == 0 {
			t.Rows = append(t.Rows, []any{r.ID, string(r.State), nil, "unseen", "no launcher pool has considered it yet", nil, nil, nil, nil, nil, nil})
			continue
		}
		sort.Slice(es, func(i, j int) bool { return es[i].PoolID < es[j].PoolID })
		for _, e := range es {
			t.Rows = append(t.Rows, []any{r.ID, string(r.State), e.Provider + "/" + e.Pool, e.Status, e.Reason,
				nullStr(e.Limit), num(e.Limit, e.Used), num(e.Limit, e.Needed), num(e.Limit, e.Max),
				strs(e.Behind), table.Age(s.now(), e.Since)})
		}
	}
	return t, nil
}
