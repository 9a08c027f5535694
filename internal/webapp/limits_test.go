package webapp

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/zkclient"
)

// bigNodes stores n nodes of about 100 kB each.
func bigNodes(t *testing.T, zk *zkclient.Client, n int) {
	for i := range n {
		node := &zkclient.Node{State: zkclient.NodeReady, Provider: "p", Pool: "main", Type: []string{"l"},
			Hostname: strings.Repeat("h", 100_000)}
		_, err := zk.Create(context.Background(), zkclient.NodePath(fmt.Sprintf("%010d", 9000+i)), node.AppendJSON(nil), zkclient.Persistent, true)
		require.NoError(t, err)
	}
}

func heapMB() float64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapAlloc) / (1 << 20)
}

// Distinct query strings cannot grow the cache past its bounds: unknown
// parameters share an entry, and the entries are bounded in bytes.
func TestCacheBoundedWhateverTheQuery(t *testing.T) {
	zk, srv, _, _ := setup(t)
	bigNodes(t, zk, 3)
	h := srv.Config.Handler.(*Handler)
	before := heapMB()

	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range 400 {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			q := fmt.Sprintf("/node-list?junk=%d&fields=id,hostname,state%s", i, strings.Repeat(",x", i%20))
			resp, err := http.Get(srv.URL + q)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	entries, bytes := h.cache.size()
	require.LessOrEqual(t, entries, CacheMaxEntries)
	require.LessOrEqual(t, bytes, CacheMaxBytes)
	require.LessOrEqual(t, entries, 20, "only the endpoint's own parameters make distinct entries")
	t.Logf("400 distinct query strings over a %d-byte node list: %d cache entries, %.1f MB cached; heap %.0f MB before, %.0f MB after",
		300_000, entries, float64(bytes)/(1<<20), before, heapMB())

	// The byte bound evicts the least recently used entries.
	small := newResponseCache(100, 1000)
	for i := range 10 {
		small.put(&entry{key: fmt.Sprint(i), body: make([]byte, 300), modified: time.Now()})
	}
	n, b := small.size()
	require.Equal(t, 3, n)
	require.Equal(t, 900, b)
	require.NotNil(t, small.get("9", time.Now()))
	require.Nil(t, small.get("0", time.Now()))
	small.put(&entry{key: "huge", body: make([]byte, 1001), modified: time.Now()})
	require.Nil(t, small.get("huge", time.Now()), "a response over the byte bound is not cached")
	few := newResponseCache(2, 1000)
	for i := range 5 {
		few.put(&entry{key: fmt.Sprint(i), body: []byte("x"), modified: time.Now()})
	}
	n, _ = few.size()
	require.Equal(t, 2, n)
}

// Entries expire on a timer, not on the next miss.
func TestCacheExpiresWithoutRequests(t *testing.T) {
	_, srv, _, _ := setup(t)
	h := srv.Config.Handler.(*Handler)
	get(t, srv, "GET", "/node-list")
	get(t, srv, "GET", "/request-list", "Accept", "application/json")
	n, _ := h.cache.size()
	require.Equal(t, 2, n)
	require.Eventually(t, func() bool { n, b := h.cache.size(); return n == 0 && b == 0 }, 5*time.Second, 50*time.Millisecond)
}

// /metrics answers GET and HEAD only.
func TestMetricsMethods(t *testing.T) {
	m := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("# metrics")) })
	srv := httptest.NewServer(New(nil, nil, WithMetrics(m)))
	defer srv.Close()
	for _, method := range []string{"POST", "PUT", "DELETE", "PATCH"} {
		resp, _ := get(t, srv, method, "/metrics")
		require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode, method)
	}
	resp, body := get(t, srv, "GET", "/metrics")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "# metrics", body)
}

func serve(t *testing.T, srv *http.Server, limit int) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.Serve(LimitListener(ln, limit)) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// rawGet sends one keep-alive request on c and reads the response.
func rawGet(c net.Conn, r *bufio.Reader) (*http.Response, error) {
	if _, err := io.WriteString(c, "GET /ready HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(r, nil)
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return resp, err
}

// Idle keep-alive connections are closed by the server.
func TestIdleConnectionsClosed(t *testing.T) {
	srv := NewServer("", New(nil, nil))
	require.Equal(t, IdleTimeout, srv.IdleTimeout)
	srv.IdleTimeout = 200 * time.Millisecond
	addr := serve(t, srv, 8)
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	r := bufio.NewReader(c)
	resp, err := rawGet(c, r)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = r.ReadByte()
	require.ErrorIs(t, err, io.EOF, "the server closed the idle connection")
}

// Connections beyond the limit wait until one closes.
func TestConnectionLimit(t *testing.T) {
	srv := NewServer("", New(nil, nil))
	addr := serve(t, srv, 2)
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer c.Close()
		resp, err := rawGet(c, bufio.NewReader(c))
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		held = append(held, c)
	}
	third, err := net.Dial("tcp", addr) // queued in the backlog
	require.NoError(t, err)
	defer third.Close()
	r := bufio.NewReader(third)
	require.NoError(t, third.SetReadDeadline(time.Now().Add(300*time.Millisecond)))
	_, err = rawGet(third, r)
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	require.True(t, ne.Timeout(), "not served while two connections are open")
	held[0].Close()
	require.NoError(t, third.SetReadDeadline(time.Now().Add(5*time.Second)))
	resp, err := http.ReadResponse(r, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.GreaterOrEqual(t, ConnectionLimit(), 8)
}
