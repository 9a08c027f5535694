// Package zkclient is the only package that talks to ZooKeeper: it owns the
// connection, every znode path, the wire format of the stored records, the
// kazoo-compatible lock recipe and the caches of the request and node trees.
package zkclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
)

// Errors returned by the client. ZooKeeper's own sentinel errors (zk.ErrNoNode,
// zk.ErrNodeExists, zk.ErrBadVersion, ...) are returned wrapped, so
// errors.Is works with the aliases below.
var (
	ErrNoNode      = zk.ErrNoNode
	ErrNodeExists  = zk.ErrNodeExists
	ErrBadVersion  = zk.ErrBadVersion
	ErrNotEmpty    = zk.ErrNotEmpty
	ErrClosed      = zk.ErrClosing
	ErrLockLost    = errors.New("zkclient: lock no longer held")
	ErrSessionLost = zk.ErrSessionExpired
)

// TLSFiles names the PEM files of a mutual-TLS connection.
type TLSFiles struct {
	Cert string // client certificate (PEM)
	Key  string // its private key (PEM)
	CA   string // CA certificate that signed the server's
}

// Config describes how to reach ZooKeeper.
type Config struct {
	// Hosts are "host:port" entries (IPv6 literals in brackets).
	Hosts []string
	// Chroot, if set, is prefixed to every path ("/nodepool" inside it).
	Chroot string
	// SessionTimeout is the requested session timeout (default 10 s).
	SessionTimeout time.Duration
	// TLS enables mutual TLS; nil means plaintext.
	TLS *TLSFiles
	// Logger receives connection events (default slog.Default()).
	Logger *slog.Logger
	// MaxPacket is the largest write sent, in bytes (default
	// DefaultMaxPacket); set it to the servers' jute.maxbuffer when that
	// was raised.
	MaxPacket int
}

// SessionState is what subscribers learn about the session.
type SessionState int

// Session states delivered to subscribers.
const (
	// StateConnected: a session is established (possibly a new one).
	StateConnected SessionState = iota
	// StateSuspended: the connection dropped; the session may still live.
	StateSuspended
	// StateLost: the session expired; every lock and ephemeral node is gone.
	StateLost
)

// String returns "connected", "suspended" or "lost".
func (s SessionState) String() string {
	switch s {
	case StateConnected:
		return "connected"
	case StateSuspended:
		return "suspended"
	case StateLost:
		return "lost"
	}
	return "unknown"
}

// SessionEvent reports a change of session state.
type SessionEvent struct {
	State SessionState // the new state
	// SessionID the session it concerns (a new id after StateLost +
	// StateConnected)
	SessionID int64
}

// Client is a ZooKeeper connection with nodepool's path layout.
type Client struct {
	conn   *zk.Conn
	chroot string
	log    *slog.Logger
	// maxPacket is Config.MaxPacket.
	maxPacket int

	mu        sync.Mutex
	subs      map[chan SessionEvent]struct{}
	state     SessionState
	sessionID int64
	lost      chan struct{} // closed when the current session is lost

	events   chan zk.Event
	routes   atomic.Pointer[[]watchRoute]
	routeIDs uint64 // last route id handed out (c.mu)
	owners   atomic.Pointer[[]ownerRoute]
	ops      Counters
	locals   localLocks
	closed   atomic.Bool
	done     chan struct{}
}

// Counters counts the requests this client sent to ZooKeeper.
type Counters struct {
	Reads   atomic.Int64 // get, exists, children
	Creates atomic.Int64 // create
	Sets    atomic.Int64 // set
	Deletes atomic.Int64 // delete
	Multis  atomic.Int64 // multi (one transaction counts once)

	phases phaseCounts
}

// Total returns the number of requests sent.
func (c *Counters) Total() int64 {
	return c.Reads.Load() + c.Creates.Load() + c.Sets.Load() + c.Deletes.Load() + c.Multis.Load()
}

// Writes returns the number of write requests sent (a multi counts once).
func (c *Counters) Writes() int64 {
	return c.Creates.Load() + c.Sets.Load() + c.Deletes.Load() + c.Multis.Load()
}

// Ops returns the client's request counters.
func (c *Client) Ops() *Counters { return &c.ops }

type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Printf(format string, args ...any) {
	a.l.Debug(fmt.Sprintf(format, args...), "component", "zk")
}

// Connect opens a session and waits until it is established or ctx ends.
func Connect(ctx context.Context, cfg Config) (*Client, error) {
	if len(cfg.Hosts) == 0 {
		return nil, errors.New("zkclient: no ZooKeeper servers configured")
	}
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = 10 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	chroot := strings.TrimRight(cfg.Chroot, "/")
	if chroot != "" && !strings.HasPrefix(chroot, "/") {
		return nil, fmt.Errorf("zkclient: chroot %q must start with /", cfg.Chroot)
	}
	c := &Client{
		chroot:    chroot,
		log:       log,
		maxPacket: cfg.MaxPacket,
		subs:      make(map[chan SessionEvent]struct{}),
		state:     StateSuspended,
		lost:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	c.locals.init()
	var tc *tls.Config
	if cfg.TLS != nil {
		var err error
		if tc, err = loadTLS(*cfg.TLS); err != nil {
			return nil, err
		}
	} else {
		log.Warn("connecting to ZooKeeper without TLS; configure zookeeper-tls for production use", "hosts", strings.Join(cfg.Hosts, ","))
	}
	dialer := func(network, address string, timeout time.Duration) (net.Conn, error) {
		d := &net.Dialer{Timeout: timeout}
		if tc == nil {
			return d.Dial(network, address)
		}
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return nil, err
		}
		conf := tc.Clone()
		conf.ServerName = host
		return tls.DialWithDialer(d, network, address, conf)
	}
	c.events = make(chan zk.Event, 64)
	conn, _, err := zk.Connect(cfg.Hosts, cfg.SessionTimeout,
		zk.WithLogger(slogAdapter{log}),
		zk.WithLogInfo(false),
		zk.WithDialer(dialer),
		zk.WithEventCallback(func(ev zk.Event) {
			if ev.Type != zk.EventSession {
				c.routeWatch(ev)
				return
			}
			select {
			case c.events <- ev:
			case <-c.done:
			}
		}),
		zk.WithMaxBufferSize(4<<20),
		zk.WithMaxConnBufferSize(4<<20),
	)
	if err != nil {
		return nil, fmt.Errorf("zkclient: connect: %w", err)
	}
	c.conn = conn
	ch := c.Subscribe()
	go c.eventLoop()
	defer c.Unsubscribe(ch)
	if c.Connected() {
		return c, c.ensureChroot(ctx)
	}
	for {
		select {
		case ev := <-ch:
			if ev.State == StateConnected {
				if err := c.ensureChroot(ctx); err != nil {
					conn.Close()
					return nil, err
				}
				return c, nil
			}
		case <-ctx.Done():
			conn.Close()
			return nil, fmt.Errorf("zkclient: connecting to %s: %w", strings.Join(cfg.Hosts, ","), ctx.Err())
		}
	}
}

// ensureChroot creates the chroot znode (and its ancestors) when missing,
// so a fresh ZooKeeper works without manual preparation.
func (c *Client) ensureChroot(ctx context.Context) error {
	if c.chroot == "" {
		return nil
	}
	p := ""
	for _, part := range strings.Split(strings.TrimPrefix(c.chroot, "/"), "/") {
		p += "/" + part
		if err := ctx.Err(); err != nil {
			return err
		}
		c.count(ctx, &c.ops.Creates)
		if _, err := c.conn.Create(p, nil, 0, openACL); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("zkclient: creating chroot %s: %w", c.chroot, err)
		}
	}
	return nil
}

func loadTLS(f TLSFiles) (*tls.Config, error) {
	if f.Cert == "" || f.Key == "" || f.CA == "" {
		return nil, errors.New("zkclient: zookeeper-tls needs cert, key and ca")
	}
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("zkclient: loading TLS client certificate: %w", err)
	}
	caPEM, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, fmt.Errorf("zkclient: reading TLS CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("zkclient: no certificates in CA file %s", f.CA)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

func (c *Client) eventLoop() {
	for {
		select {
		case ev := <-c.events:
			c.onEvent(ev)
		case <-c.done:
			return
		}
	}
}

func (c *Client) onEvent(ev zk.Event) {
	c.mu.Lock()
	var out []SessionEvent
	switch ev.State {
	case zk.StateHasSession:
		sid := c.conn.SessionID()
		if c.sessionID != 0 && sid != c.sessionID && c.state != StateLost {
			// A new session without an expiry event: the old one is gone.
			c.markLostLocked()
			out = append(out, SessionEvent{State: StateLost, SessionID: c.sessionID})
		}
		if c.state != StateConnected || sid != c.sessionID {
			c.sessionID = sid
			c.state = StateConnected
			out = append(out, SessionEvent{State: StateConnected, SessionID: sid})
		}
	case zk.StateExpired:
		if c.state != StateLost {
			c.markLostLocked()
			out = append(out, SessionEvent{State: StateLost, SessionID: c.sessionID})
		}
	case zk.StateDisconnected, zk.StateConnecting:
		if c.state == StateConnected {
			c.state = StateSuspended
			out = append(out, SessionEvent{State: StateSuspended, SessionID: c.sessionID})
		}
	case zk.StateAuthFailed:
		c.log.Error("ZooKeeper authentication failed")
	}
	subs := make([]chan SessionEvent, 0, len(c.subs))
	for s := range c.subs {
		subs = append(subs, s)
	}
	c.mu.Unlock()
	for _, e := range out {
		if e.State != StateConnected {
			c.log.Warn("ZooKeeper session "+e.State.String(), "session", fmt.Sprintf("0x%x", e.SessionID))
		} else {
			c.log.Info("ZooKeeper session connected", "session", fmt.Sprintf("0x%x", e.SessionID))
		}
		for _, s := range subs {
			select {
			case s <- e:
			default:
				// Subscriber is slow; drop the oldest event to make room.
				select {
				case <-s:
				default:
				}
				select {
				case s <- e:
				default:
				}
			}
		}
	}
}

func (c *Client) markLostLocked() {
	c.state = StateLost
	close(c.lost)
	c.lost = make(chan struct{})
}

// Subscribe returns a channel of session events. The channel is buffered;
// a subscriber that falls behind loses the oldest events, never the newest.
func (c *Client) Subscribe() chan SessionEvent {
	ch := make(chan SessionEvent, 16)
	c.mu.Lock()
	c.subs[ch] = struct{}{}
	c.mu.Unlock()
	return ch
}

// Unsubscribe stops delivery to ch.
func (c *Client) Unsubscribe(ch chan SessionEvent) {
	c.mu.Lock()
	delete(c.subs, ch)
	c.mu.Unlock()
}

// Connected reports whether the client currently has a live session.
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state == StateConnected
}

// State returns the current session state.
func (c *Client) State() SessionState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// SessionID returns the id of the current (or last) session.
func (c *Client) SessionID() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sessionID
}

// sessionLost returns a channel closed when the current session is lost.
func (c *Client) sessionLost() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lost
}

// WaitConnected blocks until a session is established or ctx ends.
func (c *Client) WaitConnected(ctx context.Context) error {
	if c.Connected() {
		return nil
	}
	ch := c.Subscribe()
	defer c.Unsubscribe(ch)
	for !c.Connected() {
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return nil
}

// Close ends the session; ephemeral nodes and locks are released.
func (c *Client) Close() {
	if c.closed.Swap(true) {
		return
	}
	close(c.done)
	c.conn.Close()
}

func (c *Client) full(p string) string {
	if c.chroot == "" {
		return p
	}
	if p == "/" {
		return c.chroot
	}
	return c.chroot + p
}

func (c *Client) strip(p string) string {
	if c.chroot == "" {
		return p
	}
	p = strings.TrimPrefix(p, c.chroot)
	if p == "" {
		return "/"
	}
	return p
}

func wrap(op, p string, err error) error {
	if err == nil {
		return nil
	}
	return &OpError{Op: op, Path: p, Err: err}
}

// OpError records the ZooKeeper operation and path that failed.
type OpError struct {
	Op   string // "get", "create", "set", "delete", ...
	Path string // the znode, without the chroot
	Err  error  // the go-zookeeper error
}

// Error returns "zookeeper <op> <path>: <cause>".
func (e *OpError) Error() string { return "zookeeper " + e.Op + " " + e.Path + ": " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *OpError) Unwrap() error { return e.Err }

// Get reads a znode's data.
func (c *Client) Get(ctx context.Context, p string) ([]byte, *zk.Stat, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	c.count(ctx, &c.ops.Reads)
	data, st, err := c.conn.Get(c.full(p))
	return data, st, wrap("get", p, err)
}

// GetW reads a znode's data and sets a watch on it.
func (c *Client) GetW(ctx context.Context, p string) ([]byte, *zk.Stat, <-chan zk.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, nil, err
	}
	c.count(ctx, &c.ops.Reads)
	data, st, ch, err := c.conn.GetW(c.full(p))
	return data, st, ch, wrap("get", p, err)
}

// Exists reports whether a znode exists.
func (c *Client) Exists(ctx context.Context, p string) (bool, *zk.Stat, error) {
	if err := ctx.Err(); err != nil {
		return false, nil, err
	}
	c.count(ctx, &c.ops.Reads)
	ok, st, err := c.conn.Exists(c.full(p))
	return ok, st, wrap("exists", p, err)
}

// ExistsW reports whether a znode exists and watches for its creation,
// change or deletion.
func (c *Client) ExistsW(ctx context.Context, p string) (bool, *zk.Stat, <-chan zk.Event, error) {
	if err := ctx.Err(); err != nil {
		return false, nil, nil, err
	}
	c.count(ctx, &c.ops.Reads)
	ok, st, ch, err := c.conn.ExistsW(c.full(p))
	return ok, st, ch, wrap("exists", p, err)
}

// Children lists a znode's children (unordered).
func (c *Client) Children(ctx context.Context, p string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.count(ctx, &c.ops.Reads)
	ch, _, err := c.conn.Children(c.full(p))
	return ch, wrap("children", p, err)
}

// ChildrenW lists a znode's children and watches the list.
func (c *Client) ChildrenW(ctx context.Context, p string) ([]string, <-chan zk.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	c.count(ctx, &c.ops.Reads)
	ch, _, w, err := c.conn.ChildrenW(c.full(p))
	return ch, w, wrap("children", p, err)
}

// Set writes a znode's data; version -1 writes unconditionally.
func (c *Client) Set(ctx context.Context, p string, data []byte, version int32) (*zk.Stat, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := c.checkSize(len(c.full(p)) + len(data) + packetOverhead); err != nil {
		return nil, wrap("set", p, err)
	}
	c.count(ctx, &c.ops.Sets)
	st, err := c.conn.Set(c.full(p), data, version)
	return st, wrap("set", p, err)
}

// CreateFlags are the znode creation modes.
type CreateFlags int32

// Creation modes.
const (
	Persistent          CreateFlags = 0
	Ephemeral           CreateFlags = zk.FlagEphemeral
	Sequential          CreateFlags = zk.FlagSequence
	EphemeralSequential CreateFlags = zk.FlagEphemeral | zk.FlagSequence
)

var openACL = zk.WorldACL(zk.PermAll)

// Create creates a znode and returns its path (with the sequence suffix for
// sequential nodes). With makepath, missing ancestors are created as empty
// persistent znodes.
func (c *Client) Create(ctx context.Context, p string, data []byte, flags CreateFlags, makepath bool) (string, error) {
	if err := c.checkSize(len(c.full(p)) + len(data) + packetOverhead); err != nil {
		return "", wrap("create", p, err)
	}
	for {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		c.count(ctx, &c.ops.Creates)
		got, err := c.conn.Create(c.full(p), data, int32(flags), openACL)
		if err == nil {
			return c.strip(got), nil
		}
		if errors.Is(err, zk.ErrNoNode) && makepath {
			if err := c.EnsurePath(ctx, parent(p)); err != nil {
				return "", err
			}
			makepath = false // once is enough; a racing delete is reported
			continue
		}
		return "", wrap("create", p, err)
	}
}

// EnsurePath creates p and its missing ancestors as empty persistent znodes.
func (c *Client) EnsurePath(ctx context.Context, p string) error {
	if p == "/" || p == "" {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	c.count(ctx, &c.ops.Creates)
	_, err := c.conn.Create(c.full(p), nil, 0, openACL)
	switch {
	case err == nil, errors.Is(err, zk.ErrNodeExists):
		return nil
	case errors.Is(err, zk.ErrNoNode):
		if err := c.EnsurePath(ctx, parent(p)); err != nil {
			return err
		}
		c.count(ctx, &c.ops.Creates)
		_, err = c.conn.Create(c.full(p), nil, 0, openACL)
		if err == nil || errors.Is(err, zk.ErrNodeExists) {
			return nil
		}
	}
	return wrap("create", p, err)
}

// Delete removes one znode; version -1 deletes unconditionally.
func (c *Client) Delete(ctx context.Context, p string, version int32) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.count(ctx, &c.ops.Deletes)
	return wrap("delete", p, c.conn.Delete(c.full(p), version))
}

// DeleteRecursive removes p and everything below it, depth first, ignoring
// znodes that are already gone.
func (c *Client) DeleteRecursive(ctx context.Context, p string) error {
	children, err := c.Children(ctx, p)
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, ch := range children {
		if err := c.DeleteRecursive(ctx, p+"/"+ch); err != nil {
			return err
		}
	}
	err = c.Delete(ctx, p, -1)
	switch {
	case err == nil, errors.Is(err, zk.ErrNoNode):
		return nil
	case errors.Is(err, zk.ErrNotEmpty):
		// Someone created a child meanwhile (e.g. a lock contender); retry.
		return c.DeleteRecursive(ctx, p)
	}
	return err
}

// Op is one operation of a Multi transaction.
type Op interface{ zkOp(c *Client) any }

// CreateOp creates a znode in a transaction.
type CreateOp struct {
	Path  string      // the znode to create (sequential: its prefix)
	Data  []byte      // its data
	Flags CreateFlags // persistent, ephemeral and/or sequential
}

// SetOp sets data in a transaction.
type SetOp struct {
	Path    string // the znode to write
	Data    []byte // its new data
	Version int32  // expected data version; -1 for any

	// record is a private copy of the record Data encodes (NodeSet,
	// RequestSet): a cache that takes the write adopts it instead of
	// decoding Data.
	record any
}

// NodeSet is the SetOp that writes node n at the given expected version.
func NodeSet(n *Node, version int32) SetOp {
	return SetOp{Path: NodePath(n.ID), Data: n.AppendJSON(nil), Version: version, record: n.Clone()}
}

// RequestSet is the SetOp that writes request r at the given expected
// version.
func RequestSet(r *NodeRequest, version int32) SetOp {
	data, rec := r.AppendJSON(nil), r.Clone()
	rec.Size = len(data)
	return SetOp{Path: RequestPath(r.ID), Data: data, Version: version, record: rec}
}

// DeleteOp deletes a znode in a transaction.
type DeleteOp struct {
	Path    string // the znode to delete
	Version int32  // expected data version; -1 for any
}

// CheckOp asserts a znode's version in a transaction.
type CheckOp struct {
	Path    string // the znode to check
	Version int32  // the data version it must have
}

func (o CreateOp) zkOp(c *Client) any {
	return &zk.CreateRequest{Path: c.full(o.Path), Data: o.Data, Acl: openACL, Flags: int32(o.Flags)}
}
func (o SetOp) zkOp(c *Client) any {
	return &zk.SetDataRequest{Path: c.full(o.Path), Data: o.Data, Version: o.Version}
}
func (o DeleteOp) zkOp(c *Client) any {
	return &zk.DeleteRequest{Path: c.full(o.Path), Version: o.Version}
}
func (o CheckOp) zkOp(c *Client) any {
	return &zk.CheckVersionRequest{Path: c.full(o.Path), Version: o.Version}
}

// Multi runs the operations atomically. On failure the error of the first
// failing operation is returned.
func (c *Client) Multi(ctx context.Context, ops ...Op) ([]zk.MultiResponse, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	reqs := make([]any, len(ops))
	size := packetOverhead
	for i, o := range ops {
		reqs[i] = o.zkOp(c)
		size += c.opSize(o)
	}
	if err := c.checkSize(size); err != nil {
		return nil, wrap("multi", "", err)
	}
	c.count(ctx, &c.ops.Multis)
	res, err := c.conn.Multi(reqs...)
	if err != nil {
		for i, r := range res {
			if r.Error != nil && !errors.Is(r.Error, zk.ErrAPIError) {
				return res, wrap("multi", fmt.Sprintf("op %d", i), r.Error)
			}
		}
		return res, wrap("multi", "", err)
	}
	for i := range res {
		res[i].String = c.strip(res[i].String)
	}
	return res, nil
}

type watchRoute struct {
	prefix string
	fn     func(zk.Event)
	id     uint64 // tells apart routes of one prefix
}

// routeWatch hands a watch event (path relative to the chroot) to the
// routes whose prefix matches. It runs on go-zookeeper's receive loop and
// must not block.
func (c *Client) routeWatch(ev zk.Event) {
	rs := c.routes.Load()
	if rs == nil {
		return
	}
	ev.Path = c.strip(ev.Path)
	for _, r := range *rs {
		if ev.Path == r.prefix || strings.HasPrefix(ev.Path, r.prefix+"/") {
			r.fn(ev)
		}
	}
}

// addWatchRoute delivers watch events under prefix to fn (which must not
// block), and returns a function that removes the route.
func (c *Client) addWatchRoute(prefix string, fn func(zk.Event)) func() {
	c.mu.Lock()
	defer c.mu.Unlock()
	var cur []watchRoute
	if p := c.routes.Load(); p != nil {
		cur = *p
	}
	c.routeIDs++
	id := c.routeIDs
	next := append(append([]watchRoute(nil), cur...), watchRoute{prefix, fn, id})
	c.routes.Store(&next)
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		var cur []watchRoute
		if p := c.routes.Load(); p != nil {
			cur = *p
		}
		var out []watchRoute
		for _, r := range cur {
			if r.id != id {
				out = append(out, r)
			}
		}
		c.routes.Store(&out)
	}
}

// IsConnectionError reports whether err comes from a lost connection (the
// operation may be retried once the client reconnects), as opposed to an
// answer from the server. A transport error (a *net.OpError such as a
// reset connection, which go-zookeeper hands to the requests it was
// sending) is one too.
func IsConnectionError(err error) bool {
	var netErr *net.OpError
	return errors.Is(err, zk.ErrConnectionClosed) || errors.Is(err, zk.ErrNoServer) ||
		errors.Is(err, zk.ErrSessionMoved) || errors.Is(err, zk.ErrClosing) ||
		errors.Is(err, zk.ErrSessionExpired) || errors.As(err, &netErr)
}
