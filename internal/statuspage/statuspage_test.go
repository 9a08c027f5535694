package statuspage_test

import (
	"encoding/json"
	"html/template"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/internal/statuspage"
)

func get(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, string(body)
}

func snapshot(t *testing.T, base string) *statuspage.Snapshot {
	t.Helper()
	code, hd, body := get(t, base+"/status.json")
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, "application/json", hd.Get("Content-Type"))
	var s statuspage.Snapshot
	require.NoError(t, json.Unmarshal([]byte(body), &s))
	return &s
}

// TestStatusPage checks the page's data and its server rendering on one
// launcher: the JSON snapshot, the HTML page, the detail pages, and the
// Grafana dashboard's queries against the launcher's /metrics.
func TestStatusPage(t *testing.T) {
	f := newFixture(t)
	t.Run("page", func(t *testing.T) { testPage(t, f) })
	t.Run("details", func(t *testing.T) { testDetails(t, f) })
	t.Run("dashboard", func(t *testing.T) { testDashboard(t, f) })
}

func testPage(t *testing.T, f *fixture) {
	base := f.srv.URL
	var s *statuspage.Snapshot
	require.Eventually(t, func() bool {
		s = snapshot(t, base)
		return len(s.Queue) == 2 && len(s.Builds) == 1 && s.Health.LastCleanup != "never"
	}, 20*time.Second, 100*time.Millisecond, "the snapshot shows both waiting requests, the build and a cleanup pass")

	require.Empty(t, s.Errors)
	require.True(t, s.Health.Connected)
	require.True(t, s.Health.Ready)
	require.Equal(t, "connected", s.Health.Session)
	require.NotEmpty(t, s.Health.Launchers)
	require.Regexp(t, `^\d+s ago$`, s.Health.LastCleanup)

	// Bars: one per provider, stacked by state, widths relative to the
	// longest bar.
	bars := map[string]statuspage.ProviderNodes{}
	for _, b := range s.Providers {
		bars[b.Provider] = b
	}
	require.Equal(t, 2, bars["sim-east"].Total)
	require.Equal(t, []statuspage.Segment{{State: "ready", Count: 2, Start: 0, Width: 100}}, bars["sim-east"].Segments)
	require.Equal(t, []statuspage.Segment{{State: "in-use", Count: 1, Start: 0, Width: 50}}, bars["sim-west"].Segments)
	require.Equal(t, 1, bars["other-launcher"].Total)

	// Quota: the full pool, the roomy pool and the tenant.
	pools := map[string]statuspage.PoolQuota{}
	for _, p := range s.Pools {
		pools[p.Provider+"/"+p.Pool] = p
	}
	west := pools["sim-west/main"].Gauges[0]
	require.Equal(t, statuspage.Gauge{Name: "servers", Used: 1, Max: 1, Limited: true, Text: "1 of 1", Level: "full", Low: 0.8, High: 0.5}, west)
	require.True(t, pools["sim-west/main"].Paused, "the full pool reports it is paused")
	east := pools["sim-east/big"].Gauges
	require.Equal(t, "2 of 6", east[0].Text)
	require.Equal(t, "cores", east[1].Name)
	require.Equal(t, "4 of 16", east[1].Text, "two nodes of the default 2-core flavor")
	require.Equal(t, "ram", east[2].Name)
	require.False(t, east[2].Limited)
	require.Len(t, s.Tenants, 1)
	require.Equal(t, "tenant-one", s.Tenants[0].Tenant)
	require.Equal(t, "servers", s.Tenants[0].Gauges[0].Name)
	require.Equal(t, 2.0, s.Tenants[0].Gauges[0].Used, "the held node and the in-use one (min-ready nodes have no tenant)")

	// Queue in serving order: priority 200 before 300; the waiting
	// request says which pool pauses it on which limit.
	require.Equal(t, f.waiting.ID, s.Queue[0].ID)
	require.Equal(t, "pool max-servers", s.Queue[0].Explain[0].Limit)
	require.Equal(t, "sim-west/main", s.Queue[0].Explain[0].Pool)
	require.Contains(t, s.Queue[0].Explain[0].Reason, "max-servers")
	require.Equal(t, hostileRequestor, s.Queue[1].Requestor)

	// Nodes newest first; images per provider.
	require.Equal(t, f.held.ID, s.Nodes[0].ID)
	require.Equal(t, []string{hostileLabel}, s.Nodes[0].Labels)
	require.Equal(t, "debian-bookworm", s.Builds[0].Image)
	require.Len(t, s.Uploads, 2)
	require.Equal(t, "sim-east", s.Uploads[0].Provider)

	// The server-rendered page shows the same, with every ZooKeeper
	// string escaped.
	code, hd, page := get(t, base+"/")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "text/html; charset=utf-8", hd.Get("Content-Type"))
	require.Contains(t, hd.Get("Content-Security-Policy"), "script-src 'self'")
	require.Contains(t, page, `href="request?id=`+f.waiting.ID+`"`)
	require.Contains(t, page, `href="node?id=`+f.inUseNode()+`"`)
	require.Contains(t, page, "waiting for quota: pool max-servers: 1 used &#43; 1 needed &gt; 1")
	require.Contains(t, page, "1 of 1")
	require.Contains(t, page, "Uploads to sim-east")
	for _, hostile := range []string{hostileLabel, hostileComment, hostileRequestor} {
		require.NotContains(t, page, hostile)
	}
	require.Contains(t, page, "&lt;script&gt;window.pwned=1&lt;/script&gt;")
	require.Equal(t, 1, strings.Count(page, "<script"), "only the page's own script element")
	require.NotContains(t, page, "onerror=\"")

	// The listings of the API are unchanged.
	code, hd, body := get(t, base+"/node-list")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "text/plain; charset=UTF-8", hd.Get("Content-Type"))
	require.Contains(t, body, "| ID")

	// Assets are embedded and served.
	for _, p := range []string{"/static/status.js", "/static/status.css"} {
		code, _, body := get(t, base+p)
		require.Equal(t, http.StatusOK, code, p)
		require.NotEmpty(t, body)
	}
}

func testDetails(t *testing.T, f *fixture) {
	base := f.srv.URL

	code, _, page := get(t, base+"/node?id="+f.inUseNode())
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, page, "<th>State</th><td>in-use</td>")
	require.Contains(t, page, "<th>Provider</th><td>sim-west</td>")

	code, _, page = get(t, base+"/node?id="+f.held.ID)
	require.Equal(t, http.StatusOK, code)
	require.NotContains(t, page, hostileLabel)
	require.NotContains(t, page, hostileComment)
	require.Contains(t, page, template.HTMLEscapeString(hostileComment))

	code, _, page = get(t, base+"/request?id="+f.waiting.ID)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, page, "sim-west/main")
	require.Contains(t, page, "max-servers")

	for _, p := range []string{"/node?id=0000099999", "/node?id=..%2Fnodes", "/node", "/request?id=200-9999999999", "/nope"} {
		code, _, _ := get(t, base+p)
		require.Equal(t, http.StatusNotFound, code, p)
	}
	resp, err := http.Post(base+"/", "text/plain", strings.NewReader("x"))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
}
