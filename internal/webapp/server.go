package webapp

import (
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"
)

// Timeouts and the connection limit of the web server. Idle keep-alive
// connections are closed after IdleTimeout; at most ConnectionLimit()
// connections are open at once (further clients wait in the listen
// backlog), so clients cannot use up the file descriptors the launcher
// needs for its own files and connections.
const (
	ReadHeaderTimeout = 10 * time.Second
	IdleTimeout       = 30 * time.Second
	WriteTimeout      = 2 * time.Minute
	MaxConnections    = 256
)

// NewServer returns an http.Server for h on addr with the timeouts above.
func NewServer(addr string, h http.Handler) *http.Server {
	return &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: ReadHeaderTimeout,
		IdleTimeout: IdleTimeout, WriteTimeout: WriteTimeout, MaxHeaderBytes: 64 << 10}
}

// ListenAndServe listens on srv.Addr and serves at most ConnectionLimit()
// connections at once.
func ListenAndServe(srv *http.Server) error {
	ln, err := net.Listen("tcp", srv.Addr)
	if err != nil {
		return err
	}
	return srv.Serve(LimitListener(ln, ConnectionLimit()))
}

// ConnectionLimit returns MaxConnections, or a quarter of the process's
// open-file limit when that is lower (at least 8).
func ConnectionLimit() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == 0 {
		return MaxConnections
	}
	n := MaxConnections
	if q := rl.Cur / 4; q < uint64(n) {
		n = int(q)
	}
	return max(n, 8)
}

// LimitListener returns a listener that accepts at most n connections at
// once: Accept waits until an accepted connection is closed.
func LimitListener(ln net.Listener, n int) net.Listener {
	return &limitListener{Listener: ln, slots: make(chan struct{}, n), done: make(chan struct{})}
}

type limitListener struct {
	net.Listener
	slots     chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.slots }}, nil
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
