package zkclient

import (
	"context"
	"encoding/json"
	"errors"
	"sort"

	"github.com/go-zookeeper/zk"
)

// PoolStatusRoot holds, per running pool worker, why each request it has
// seen is waiting. It is outside upstream's schema (Python tools ignore it)
// and its znodes are ephemeral: they vanish with the launcher.
const PoolStatusRoot = "/nodepool/launcher-status"

// Explanation statuses.
const (
	ExplainHandling = "handling" // accepted; nodes are being launched
	ExplainPaused   = "paused"   // accepted, waiting for quota
	ExplainDeferred = "deferred" // not accepted yet (see Reason)
	ExplainDeclined = "declined" // this pool declined it
)

// Explanation says what one pool is doing about one request.
type Explanation struct {
	Request  string `json:"request"`  // the request id
	PoolID   string `json:"pool_id"`  // the pool worker's id (as in declined_by)
	Provider string `json:"provider"` // the pool's provider
	Pool     string `json:"pool"`     // the pool's name
	// Status ExplainHandling, ExplainPaused, ExplainDeferred or
	// ExplainDeclined
	Status string `json:"status"`
	Reason string `json:"reason"` // human-readable reason
	// For quota waits: which limit, and the numbers.
	Limit    string  `json:"limit,omitempty"`    // e.g. "pool max-servers", "cloud cores", "tenant t1 ram"
	Resource string  `json:"resource,omitempty"` // the resource over the limit
	Used     float64 `json:"used,omitempty"`     // how much of it is in use
	Needed   float64 `json:"needed,omitempty"`   // how much the request needs
	Max      float64 `json:"max,omitempty"`      // the limit
	// Behind lists requests this one is queued behind.
	Behind []string `json:"behind,omitempty"`
	Since  float64  `json:"since"` // when the status began (Unix seconds)
}

// PoolStatus is what one pool worker publishes.
type PoolStatus struct {
	PoolID   string        `json:"pool_id"`  // the pool worker's id
	Provider string        `json:"provider"` // its provider
	Pool     string        `json:"pool"`     // its pool
	Paused   bool          `json:"paused"`   // whether the pool is paused at quota
	Requests []Explanation `json:"requests"` // what it says about each request it saw
}

func poolStatusPath(poolID string) string { return PoolStatusRoot + "/" + poolID }

// PublishPoolStatus writes a pool worker's status to its ephemeral znode.
func (c *Client) PublishPoolStatus(ctx context.Context, st *PoolStatus) error {
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	p := poolStatusPath(st.PoolID)
	if _, err := c.Set(ctx, p, data, -1); err == nil {
		return nil
	} else if !errors.Is(err, zk.ErrNoNode) {
		return err
	}
	_, err = c.Create(ctx, p, data, Ephemeral, true)
	if errors.Is(err, zk.ErrNodeExists) {
		_, err = c.Set(ctx, p, data, -1)
	}
	return err
}

// RemovePoolStatus deletes a pool worker's status znode.
func (c *Client) RemovePoolStatus(ctx context.Context, poolID string) error {
	err := c.Delete(ctx, poolStatusPath(poolID), -1)
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	return err
}

// PoolStatuses reads every published pool status; unreadable ones are skipped.
func (c *Client) PoolStatuses(ctx context.Context) ([]*PoolStatus, error) {
	ids, err := c.Children(ctx, PoolStatusRoot)
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	sort.Strings(ids)
	var out []*PoolStatus
	for _, id := range ids {
		data, _, err := c.Get(ctx, poolStatusPath(id))
		if err != nil {
			continue
		}
		var st PoolStatus
		if json.Unmarshal(data, &st) != nil {
			continue
		}
		out = append(out, &st)
	}
	return out, nil
}

// Explanations returns, per request id, what every pool says about it.
func (c *Client) Explanations(ctx context.Context) (map[string][]Explanation, error) {
	sts, err := c.PoolStatuses(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string][]Explanation{}
	for _, st := range sts {
		for _, e := range st.Requests {
			out[e.Request] = append(out[e.Request], e)
		}
	}
	return out, nil
}
