package statuspage

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nodepool-go/nodepool/internal/status"
	"github.com/nodepool-go/nodepool/zkclient"
)

// serveNode shows every field of one node, as the node list's detail
// columns.
func (h *Handler) serveNode(w http.ResponseWriter, r *http.Request) {
	h.lookup(w, r, "node", func(ctx context.Context, zk *zkclient.Client, d *detail) error {
		src := &status.Source{ZK: zk, Now: h.now}
		t, err := src.NodeList(ctx, d.ID)
		if err != nil {
			return err
		}
		if len(t.Rows) == 0 {
			return zkclient.ErrNoNode
		}
		for i, c := range t.Columns {
			f := field{Name: c.Title, Values: []string{status.CellText(t.Rows[0][i])}}
			if c.Field == "allocated_to" && f.Values[0] != "" {
				f.Link = "request"
			}
			d.Fields = append(d.Fields, f)
		}
		return nil
	})
}

// serveRequest shows one node request and what every pool says about it.
func (h *Handler) serveRequest(w http.ResponseWriter, r *http.Request) {
	h.lookup(w, r, "request", func(ctx context.Context, zk *zkclient.Client, d *detail) error {
		req, err := zk.GetRequest(ctx, d.ID)
		if err != nil {
			return err
		}
		now := h.now()
		one := func(name, v string) field { return field{Name: name, Values: []string{v}} }
		d.Fields = []field{
			one("Request ID", req.ID),
			one("State", string(req.State)),
			one("Age", Age(now, req.StateTime)),
			one("Priority", req.Priority()),
			one("Relative Priority", strconv.Itoa(req.RelativePriority)),
			one("Requestor", req.Requestor),
			one("Tenant", req.TenantName),
			one("Preferred Provider", req.Provider),
			one("Node Types", joinOrEmpty(req.NodeTypes)),
			{Name: "Nodes", Values: req.Nodes, Link: "node"},
			one("Declined By", joinOrEmpty(req.DeclinedBy)),
			one("Event ID", req.EventID),
			one("Created", ago(now, req.CreatedTime)),
		}
		expl, err := zk.Explanations(ctx)
		if err != nil {
			return err
		}
		d.Explain = explanations(expl[req.ID], now)
		return nil
	})
}

// ago is Age with " ago", or "-" for no timestamp.
func ago(now time.Time, unix float64) string {
	if unix <= 0 {
		return "-"
	}
	return Age(now, unix) + " ago"
}

func joinOrEmpty(v []string) string { return strings.Join(v, ", ") }
