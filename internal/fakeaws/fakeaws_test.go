package fakeaws

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func call(t *testing.T, c *Cloud, form url.Values) (int, string) {
	t.Helper()
	resp, err := http.PostForm(c.URL+"/", form)
	require.NoError(t, err)
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, b.String()
}

func TestInstanceLifecycle(t *testing.T) {
	c := Setup(t, Options{PendingTime: 40 * time.Millisecond, Invisible: 20 * time.Millisecond, ShutdownTime: 20 * time.Millisecond, TerminatedLinger: 40 * time.Millisecond})
	status, body := call(t, c, url.Values{"Action": {"RunInstances"}, "ImageId": {"ami-1e749f67"}, "InstanceType": {"t3.medium"}, "MinCount": {"1"}, "MaxCount": {"1"}})
	require.Equal(t, 200, status, body)
	require.Contains(t, body, "<name>pending</name>")
	id := body[strings.Index(body, "<instanceId>")+len("<instanceId>"):]
	id = id[:strings.Index(id, "<")]
	_, body = call(t, c, url.Values{"Action": {"DescribeInstances"}})
	require.NotContains(t, body, id, "not listed right after RunInstances")
	require.Eventually(t, func() bool { return c.InstanceState(id) == "running" }, 5*time.Second, 5*time.Millisecond)
	_, body = call(t, c, url.Values{"Action": {"DescribeInstances"}})
	require.Contains(t, body, id)
	status, _ = call(t, c, url.Values{"Action": {"TerminateInstances"}, "InstanceId.1": {id}})
	require.Equal(t, 200, status)
	require.Equal(t, "shutting-down", c.InstanceState(id))
	require.Eventually(t, func() bool { return c.InstanceState(id) == "terminated" }, 5*time.Second, 5*time.Millisecond)
	require.Eventually(t, func() bool { _, ok := c.Instance(id); return !ok }, 5*time.Second, 5*time.Millisecond)
	status, body = call(t, c, url.Values{"Action": {"TerminateInstances"}, "InstanceId.1": {id}})
	require.Equal(t, 400, status)
	require.Contains(t, body, "<Code>InvalidInstanceID.NotFound</Code>")
}

func TestFaultsAndGlob(t *testing.T) {
	c := Setup(t, Options{})
	c.FailNext(1, "RunInstances", "RequestLimitExceeded")
	status, body := call(t, c, url.Values{"Action": {"DescribeInstances"}})
	require.Equal(t, 200, status, "a fault for another action does not apply")
	status, body = call(t, c, url.Values{"Action": {"RunInstances"}})
	require.Equal(t, 503, status)
	require.Contains(t, body, "RequestLimitExceeded")
	require.True(t, globMatch("ubuntu-*", "ubuntu-jammy"))
	require.True(t, globMatch("a?c", "abc"))
	require.False(t, globMatch("ubuntu-*", "debian"))
}
