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
