package driver_test

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/nodepool-go/nodepool/driver"
)

func TestAPICallName(t *testing.T) {
	for _, c := range []struct{ service, method, path, want string }{
		{"compute", "GET", "/servers/detail", "compute.GET.servers_detail"},
		{"compute", "GET", "servers", "compute.GET.servers"},
		{"compute", "POST", "/servers", "compute.POST.servers"},
		{"compute", "DELETE", "/servers/8c1b2e0e-61a3-4f3c-9b8e-0e7e9d6c0f11", "compute.DELETE.server"},
		{"compute", "GET", "/servers/abc/os-interface", "compute.GET.server_os-interface"},
		{"network", "GET", "/v2.0/ports.json", "network.GET.ports"},
		{"network", "DELETE", "/v2.0/floatingips/123", "network.DELETE.floatingip"},
		{"image", "GET", "/v2/images", "image.GET.images"},
		{"identity", "POST", "/v3/auth/tokens", "identity.POST.tokens"},
		{"compute", "GET", "/", "compute.GET.discovery"},
		{"block-storage", "GET", "/os-quota-sets/p", "block-storage.GET.os-quota-set"},
		{"ec2", "POST", "/", "ec2.POST.discovery"},
		{"compute", "GET", "/flavors/m1.small", "compute.GET.flavor"},
	} {
		if got := driver.APICallName(c.service, c.method, c.path); got != c.want {
			t.Errorf("%s %s %s: %q, want %q", c.service, c.method, c.path, got, c.want)
		}
	}
}

type taskLog struct {
	mu    sync.Mutex
	calls []string
	codes []int
}

func (l *taskLog) TaskDone(provider, call string, status int, d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, provider+" "+call)
	l.codes = append(l.codes, status)
}

func TestTaskTransportRecordsEveryCall(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodDelete {
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()
	rec := &taskLog{}
	name := func(r *http.Request) string { return driver.APICallName("compute", r.Method, r.URL.Path) }
	c := &http.Client{Transport: driver.TaskTransport(nil, driver.Env{Services: rec}, "cloud1", name)}
	if _, err := c.Get(srv.URL + "/servers/detail"); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodDelete, srv.URL+"/servers/42", nil)
	if _, err := c.Do(req); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	if _, err := c.Get(srv.URL + "/servers"); err == nil {
		t.Fatal("request to a closed server succeeded")
	}
	want := []string{"cloud1 compute.GET.servers_detail", "cloud1 compute.DELETE.server", "cloud1 compute.GET.servers"}
	wantCodes := []int{200, 404, 0}
	for i := range want {
		if i >= len(rec.calls) || rec.calls[i] != want[i] || rec.codes[i] != wantCodes[i] {
			t.Fatalf("recorded %q %v, want %q %v", rec.calls, rec.codes, want, wantCodes)
		}
	}
	// Without a recorder the base transport is used as it is.
	base := http.DefaultTransport
	if driver.TaskTransport(base, driver.Env{}, "p", name) != base {
		t.Error("transport wrapped without a recorder")
	}
}
