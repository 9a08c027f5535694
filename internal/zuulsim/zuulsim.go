// Package zuulsim speaks to a nodepool launcher through ZooKeeper exactly
// as Zuul's classic nodepool client does: it
// submits node requests with Zuul's payload and key order, waits for them
// with watches, locks and accepts the nodes, marks them in-use, and returns
// or holds them. Tests, the example client and the benchmark use it.
package zuulsim

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/nodepool-go/nodepool/zkclient"
)

// DefaultSystemID is the Zuul system id used when Options.SystemID is empty.
var DefaultSystemID = newHex()

// Errors reported by Wait and Accept.
var (
	// ErrRequestFailed: the launcher failed the request (Zuul's NODE_FAILURE).
	ErrRequestFailed = errors.New("zuulsim: node request failed")
	// ErrRequestGone: the request znode disappeared before it completed.
	ErrRequestGone = errors.New("zuulsim: node request vanished")
	// ErrNotAllocated: a node of a fulfilled request is not allocated to it.
	ErrNotAllocated = errors.New("zuulsim: node not allocated to the request")
)

// Options are the Zuul-side attributes of a request; zero values take defaults.
type Options struct {
	Priority         string        // 3-character priority, default "200"
	RelativePriority int           // secondary sort key
	SystemID         string        // Zuul system id (32 hex), default DefaultSystemID
	Tenant           string        // default "tenant-one"
	Pipeline         string        // default "check"
	JobName          string        // default "zuulsim-job"
	ProjectName      string        // written into user_data, default "example.org/zuulsim"
	Provider         string        // preferred provider, default none
	EventID          string        // default a fresh uuid4 hex
	LockTimeout      time.Duration // blocking node-lock timeout, default 30 s (Zuul's)
}

func (o Options) withDefaults() Options {
	if o.Priority == "" {
		o.Priority = "200"
	}
	if o.SystemID == "" {
		o.SystemID = DefaultSystemID
	}
	if o.Tenant == "" {
		o.Tenant = "tenant-one"
	}
	if o.Pipeline == "" {
		o.Pipeline = "check"
	}
	if o.JobName == "" {
		o.JobName = "zuulsim-job"
	}
	if o.ProjectName == "" {
		o.ProjectName = "example.org/zuulsim"
	}
	if o.EventID == "" {
		o.EventID = newHex()
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = LockTimeout
	}
	return o
}

func newHex() string { return strings.ReplaceAll(uuid.NewString(), "-", "") }

func now() float64 { return float64(time.Now().UnixNano()) / 1e9 }

// Request is a node request submitted by Submit.
type Request struct {
	ID          string                // znode name, e.g. "200-0000000042"
	Labels      []string              // requested node types
	SubmittedAt time.Time             // just before the create was sent
	DoneAt      time.Time             // when Wait saw fulfilled or failed
	Result      *zkclient.NodeRequest // the fulfilled or failed request, after Wait

	c    *zkclient.Client
	opts Options
}

// Submit creates a node request the way the Zuul scheduler does: a
// persistent sequential znode /nodepool/requests/<priority>- with Zuul's
// payload (fixtures/node-request-zuul-new.json).
func Submit(ctx context.Context, c *zkclient.Client, labels []string, opts Options) (*Request, error) {
	opts = opts.withDefaults()
	if len(opts.Priority) != 3 || strings.Contains(opts.Priority, "-") {
		return nil, fmt.Errorf("zuulsim: priority %q must be 3 characters without '-'", opts.Priority)
	}
	if len(labels) == 0 {
		return nil, errors.New("zuulsim: no labels requested")
	}
	r := &Request{Labels: append([]string(nil), labels...), c: c, opts: opts}
	r.SubmittedAt = time.Now()
	t := float64(r.SubmittedAt.UnixNano()) / 1e9
	data := encodeZuulRequest(requestFields{
		NodeTypes:        labels,
		Requestor:        opts.SystemID,
		CreatedTime:      t,
		Provider:         opts.Provider,
		StateTime:        t,
		RelativePriority: opts.RelativePriority,
		EventID:          opts.EventID,
		TenantName:       opts.Tenant,
		BuildSetUUID:     newHex(),
		PipelineName:     opts.Pipeline,
		JobUUID:          newHex(),
		JobName:          opts.JobName,
		SpanStartNanos:   r.SubmittedAt.UnixNano(),
	})
	p, err := c.Create(ctx, zkclient.RequestRoot+"/"+opts.Priority+"-", data, zkclient.Sequential, true)
	if err != nil {
		return nil, err
	}
	r.ID = p[strings.LastIndexByte(p, '/')+1:]
	return r, nil
}

// Wait blocks until the request is fulfilled or failed, using data
// watches. A failed request is deleted, as Zuul does, and reported with
// ErrRequestFailed; a vanished one with ErrRequestGone.
func (r *Request) Wait(ctx context.Context) (*zkclient.NodeRequest, error) {
	p := zkclient.RequestPath(r.ID)
	for {
		data, st, ev, err := r.c.GetW(ctx, p)
		if errors.Is(err, zkclient.ErrNoNode) {
			return nil, fmt.Errorf("%w: %s", ErrRequestGone, r.ID)
		}
		if zkclient.IsConnectionError(err) && ctx.Err() == nil {
			// Like Zuul's client: wait for the connection and read again.
			if werr := r.c.WaitConnected(ctx); werr != nil {
				return nil, werr
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		req, err := zkclient.DecodeRequest(r.ID, data)
		if err != nil {
			return nil, fmt.Errorf("zuulsim: request %s: %w", r.ID, err)
		}
		req.Version = st.Version
		switch req.State {
		case zkclient.RequestFulfilled:
			r.DoneAt, r.Result = time.Now(), req
			return req, nil
		case zkclient.RequestFailed:
			r.DoneAt, r.Result = time.Now(), req
			if err := r.Cancel(ctx); err != nil {
				return req, err
			}
			return req, fmt.Errorf("%w: %s (declined by %v)", ErrRequestFailed, r.ID, req.DeclinedBy)
		}
		select {
		case <-ev:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Cancel deletes the request (Zuul does so at any time, even while a
// launcher holds its lock). A request already gone is not an error.
func (r *Request) Cancel(ctx context.Context) error {
	err := r.c.Delete(ctx, zkclient.RequestPath(r.ID), -1)
	if errors.Is(err, zkclient.ErrNoNode) {
		return nil
	}
	return err
}

// RelativePriority revises the request's relative_priority as Zuul does:
// under a non-blocking request lock, with a versioned set. It reports false
// (and no error) when someone else holds the lock, which Zuul skips silently.
func (r *Request) RelativePriority(ctx context.Context, n int) (bool, error) {
	lock := r.c.RequestLock(r.ID)
	ok, err := lock.TryAcquire(ctx)
	if err != nil || !ok {
		return false, err
	}
	defer func() { _ = lock.Release(context.WithoutCancel(ctx)) }()
	p := zkclient.RequestPath(r.ID)
	data, st, err := r.c.Get(ctx, p)
	if err != nil {
		return false, err
	}
	m, err := parseMembers(data)
	if err != nil {
		return false, err
	}
	m.set("relative_priority", rawInt(int64(n)))
	if _, err := r.c.Set(ctx, p, m.encode(), st.Version); err != nil {
		return false, err
	}
	r.opts.RelativePriority = n
	return true, nil
}
