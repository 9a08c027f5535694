package webapp

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/internal/zktest"
	"github.com/nodepool-go/nodepool/zkclient"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

const buildID = "5f0c6e1c2b7d4e3f9a1b2c3d4e5f6a7b"

func setup(t *testing.T) (*zkclient.Client, *httptest.Server, *clock, *atomic.Bool) {
	zk, _ := zktest.Connect(t)
	ctx := context.Background()
	create := func(p string, data []byte) {
		_, err := zk.Create(ctx, p, data, zkclient.Persistent, true)
		require.NoError(t, err)
	}
	n := &zkclient.Node{State: zkclient.NodeReady, StateTime: 1690930000 - 1267.5, Provider: "osp-east", Pool: "main",
		Type: []string{"ubuntu-jammy"}, ExternalID: "8e1f6c1a-3b2d-4c5e-9f70-1a2b3c4d5e6f", PublicIPv4: "203.0.113.10",
		PublicIPv6: "2001:db8::10", PrivateIPv4: "10.0.0.12", AZ: "nova", Username: "zuul", Launcher: "nl01"}
	create(zkclient.NodePath("0000000123"), n.AppendJSON(nil))
	b := &zkclient.ImageBuild{State: zkclient.ImageReady, StateTime: 1690923456.78, Builder: "nb01.example.org", Formats: []string{"qcow2", "raw"}}
	data, _ := b.MarshalJSON()
	create(zkclient.BuildPath("ubuntu-jammy", buildID), data)
	u := &zkclient.ImageUpload{State: zkclient.ImageReady, StateTime: 1690925000.12, ExternalName: "ubuntu-jammy-1690924100",
		ExternalID: "0d9c7b0e-7c1f-4b8e-9c39-5a0e8d1f2a3b"}
	data, _ = u.MarshalJSON()
	create(zkclient.UploadPath("ubuntu-jammy", buildID, "osp-east", "0000000001"), data)
	r := &zkclient.NodeRequest{State: zkclient.RequestPending, NodeTypes: []string{"ubuntu-jammy"},
		Requestor: "c3a1e59b6f2d4a0e9b7d8f1e2a3b4c5d", EventID: "c2d9a7e4f1b0483c9d5e6f7a8b9c0d1e"}
	create(zkclient.RequestPath("200-0000000457"), r.AppendJSON(nil))
	comp := &zkclient.Component{Kind: zkclient.KindPool, Hostname: "nl01", State: zkclient.ComponentRunning,
		ID: "nl01-osp-east-main", ProviderName: "osp-east", SupportedLabels: []string{"ubuntu-jammy", "centos-9-stream"}}
	require.NoError(t, zk.RegisterComponent(ctx, comp))
	comp2 := &zkclient.Component{Kind: zkclient.KindPool, Hostname: "nl02", State: zkclient.ComponentRunning,
		SupportedLabels: []string{"ubuntu-jammy"}}
	require.NoError(t, zk.RegisterComponent(ctx, comp2))

	clk := &clock{t: time.Unix(1690930000, 0)}
	var ready atomic.Bool
	srv := httptest.NewServer(New(zk, ready.Load, WithClock(clk.now)))
	t.Cleanup(srv.Close)
	return zk, srv, clk, &ready
}

func get(t *testing.T, srv *httptest.Server, method, path string, hdr ...string) (*http.Response, string) {
	req, err := http.NewRequest(method, srv.URL+path, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	resp.Body.Close()
	return resp, string(body)
}

func TestReady(t *testing.T) {
	_, srv, _, ready := setup(t)
	resp, _ := get(t, srv, "GET", "/ready")
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	ready.Store(true)
	resp, body := get(t, srv, "GET", "/ready")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "OK", body)
	require.Equal(t, ContentTypeText, resp.Header.Get("Content-Type"))
	require.Empty(t, resp.Header.Get("Cache-Control"))
}

func TestMethodsAndNotFound(t *testing.T) {
	_, srv, _, _ := setup(t)
	for _, p := range []string{"/node-list", "/ready"} {
		resp, _ := get(t, srv, "POST", p)
		require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
		require.Equal(t, "GET, HEAD", resp.Header.Get("Allow"))
	}
	resp, _ := get(t, srv, "DELETE", "/image-list")
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	for _, p := range []string{"/", "/health", "/node-list.json", "/node-list/", "/nodes"} {
		resp, _ := get(t, srv, "GET", p)
		require.Equal(t, http.StatusNotFound, resp.StatusCode, p)
	}
	resp, body := get(t, srv, "HEAD", "/node-list")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Empty(t, body)
	require.Equal(t, "public, max-age=1", resp.Header.Get("Cache-Control"))
}

func TestNodeList(t *testing.T) {
	_, srv, _, _ := setup(t)
	resp, body := get(t, srv, "GET", "/node-list")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, ContentTypeText, resp.Header.Get("Content-Type"))
	require.Equal(t, "*", resp.Header.Get("Access-Control-Allow-Origin"))
	require.Equal(t, "public, max-age=1", resp.Header.Get("Cache-Control"))
	require.Equal(t, "Tue, 01 Aug 2023 22:46:40 GMT", resp.Header.Get("Last-Modified"))
	require.Equal(t, "Tue, 01 Aug 2023 22:46:41 GMT", resp.Header.Get("Expires"))
	require.False(t, strings.HasSuffix(body, "\n"))
	require.Contains(t, body, "| 0000000123 | osp-east | ubuntu-jammy | 8e1f6c1a-3b2d-4c5e-9f70-1a2b3c4d5e6f | 203.0.113.10 | 2001:db8::10 | ready | 00:00:21:07 | unlocked | main |")

	resp, body = get(t, srv, "GET", "/node-list", "Accept", "application/json")
	require.Equal(t, ContentTypeJSON, resp.Header.Get("Content-Type"))
	require.Equal(t, `[{"id": "0000000123", "provider": "osp-east", "label": ["ubuntu-jammy"], "server_id": "8e1f6c1a-3b2d-4c5e-9f70-1a2b3c4d5e6f", "public_ipv4": "203.0.113.10", "ipv6": "2001:db8::10", "state": "ready", "age": "00:00:21:07", "locked": "unlocked", "pool": "main", "hostname": null, "private_ipv4": "10.0.0.12", "AZ": "nova", "username": "zuul", "connection_port": 22, "launcher": "nl01", "allocated_to": null, "hold_job": null, "comment": null, "user_data": null, "driver_data": null}]`, body)

	_, body = get(t, srv, "GET", "/node-list?node_id=0000000123&fields=id,state,bogus")
	require.Equal(t, "+------------+-------+\n| ID         | State |\n+------------+-------+\n| 0000000123 | ready |\n+------------+-------+", body)
	_, body = get(t, srv, "GET", "/node-list?node_id=0000000999&fields=id,state")
	require.Equal(t, "+----+-------+\n| ID | State |\n+----+-------+\n+----+-------+", body)
	_, body = get(t, srv, "GET", "/node-list?node_id=0000000999", "Accept", "application/json")
	require.Equal(t, "[]", body)
}

func TestImageEndpoints(t *testing.T) {
	_, srv, _, _ := setup(t)
	_, body := get(t, srv, "GET", "/image-list?fields=id,image,state")
	require.Equal(t, `+----------------------------------+--------------+-------+
| Build ID                         | Image        | State |
+----------------------------------+--------------+-------+
| 5f0c6e1c2b7d4e3f9a1b2c3d4e5f6a7b | ubuntu-jammy | ready |
+----------------------------------+--------------+-------+`, body)
	// fields is ignored for JSON.
	_, body = get(t, srv, "GET", "/image-list?fields=id,image,state", "Accept", "application/json")
	require.Equal(t, `[{"id": "5f0c6e1c2b7d4e3f9a1b2c3d4e5f6a7b", "upload_id": "0000000001", "provider": "osp-east", "image": "ubuntu-jammy", "external_name": "ubuntu-jammy-1690924100", "external_id": "0d9c7b0e-7c1f-4b8e-9c39-5a0e8d1f2a3b", "state": "ready", "age": 1690925000}]`, body)
	_, body = get(t, srv, "GET", "/dib-image-list", "Accept", "application/json")
	require.Equal(t, `[{"id": "ubuntu-jammy-5f0c6e1c2b7d4e3f9a1b2c3d4e5f6a7b", "image": "ubuntu-jammy", "builder": "nb01.example.org", "formats": ["qcow2", "raw"], "state": "ready", "age": 1690923456}]`, body)
	_, body = get(t, srv, "GET", "/dib-image-list")
	require.Contains(t, body, "| ubuntu-jammy-5f0c6e1c2b7d4e3f9a1b2c3d4e5f6a7b | ubuntu-jammy | nb01.example.org | qcow2,raw | ready | 00:01:49:04 |")
	_, body = get(t, srv, "GET", "/image-status", "Accept", "application/json")
	require.Equal(t, `[{"image": "ubuntu-jammy", "paused": false, "build_request": null, "build_request_age": null}]`, body)
	_, body = get(t, srv, "GET", "/image-status")
	require.Contains(t, body, "| ubuntu-jammy | False  |               |                   |")
}

func TestRequestAndLabelList(t *testing.T) {
	_, srv, _, _ := setup(t)
	_, body := get(t, srv, "GET", "/request-list", "Accept", "application/json")
	require.Equal(t, `[{"id": "200-0000000457", "relative_priority": 0, "state": "pending", "requestor": "c3a1e59b6f2d4a0e9b7d8f1e2a3b4c5d", "node_types": ["ubuntu-jammy"], "nodes": [], "declined_by": [], "event_id": "c2d9a7e4f1b0483c9d5e6f7a8b9c0d1e"}]`, body)
	_, body = get(t, srv, "GET", "/request-list?fields=id,node_types")
	require.Equal(t, "+----------------+--------------+\n| Request ID     | Node Types   |\n+----------------+--------------+\n| 200-0000000457 | ubuntu-jammy |\n+----------------+--------------+", body)
	_, body = get(t, srv, "GET", "/label-list", "Accept", "application/json")
	require.Equal(t, `[{"label": "centos-9-stream"}, {"label": "ubuntu-jammy"}]`, body)
	_, body = get(t, srv, "GET", "/label-list")
	require.Equal(t, "+-----------------+\n| Label           |\n+-----------------+\n| centos-9-stream |\n| ubuntu-jammy    |\n+-----------------+", body)
}

func TestCaching(t *testing.T) {
	zk, srv, clk, _ := setup(t)
	resp1, body1 := get(t, srv, "GET", "/request-list")
	_, err := zk.Create(context.Background(), zkclient.RequestPath("100-0000000001"),
		(&zkclient.NodeRequest{State: zkclient.RequestRequested}).AppendJSON(nil), zkclient.Persistent, false)
	require.NoError(t, err)
	clk.add(500 * time.Millisecond)
	resp2, body2 := get(t, srv, "GET", "/request-list")
	require.Equal(t, body1, body2)
	require.Equal(t, resp1.Header.Get("Last-Modified"), resp2.Header.Get("Last-Modified"))
	// The JSON variant is cached separately and computed now.
	_, jbody := get(t, srv, "GET", "/request-list", "Accept", "application/json")
	require.Contains(t, jbody, "100-0000000001")
	// Conditional request.
	resp, body := get(t, srv, "GET", "/request-list", "If-Modified-Since", resp1.Header.Get("Last-Modified"))
	require.Equal(t, http.StatusNotModified, resp.StatusCode)
	require.Empty(t, body)

	clk.add(600 * time.Millisecond)
	resp3, body3 := get(t, srv, "GET", "/request-list")
	require.Contains(t, body3, "100-0000000001")
	require.NotEqual(t, resp1.Header.Get("Last-Modified"), resp3.Header.Get("Last-Modified"))
	resp, _ = get(t, srv, "GET", "/request-list", "If-Modified-Since", resp1.Header.Get("Last-Modified"))
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

func TestNegotiate(t *testing.T) {
	cases := []struct {
		accept []string
		want   string
	}{
		{nil, "text/html"},
		{[]string{"application/json"}, ContentTypeJSON},
		{[]string{"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}, "text/html"},
		{[]string{"text/plain"}, "text/plain"},
		{[]string{"application/json, text/plain"}, "text/plain"},
		{[]string{"application/json;q=1, text/*;q=0.5"}, ContentTypeJSON},
		{[]string{"*/*"}, "text/html"},
		{[]string{"*/*;q=0.1, application/json"}, ContentTypeJSON},
		{[]string{"application/*"}, ContentTypeJSON},
		{[]string{"image/png"}, "text/plain"},
		{[]string{"text/html;q=0, */*"}, "text/plain"},
	}
	for _, c := range cases {
		require.Equal(t, c.want, Negotiate(c.accept), "%v", c.accept)
	}
}
