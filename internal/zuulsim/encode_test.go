package zuulsim

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// fixture reads a protocol fixture from the copy the zkclient tests keep
// (testdata/fixtures there, copied from the spec).
func fixture(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "zkclient", "testdata", "fixtures", name))
	require.NoError(t, err)
	return data
}

func TestEncodeZuulRequestMatchesFixture(t *testing.T) {
	got := encodeZuulRequest(requestFields{
		NodeTypes:      []string{"ubuntu-jammy"},
		Requestor:      "c3a1e59b6f2d4a0e9b7d8f1e2a3b4c5d",
		CreatedTime:    1690929000.1234567,
		StateTime:      1690929000.1201663,
		EventID:        "9b8a7f6e5d4c4b3a9281706f5e4d3c2b",
		TenantName:     "openstack",
		BuildSetUUID:   "0a9f8e7d6c5b4a3928170f6e5d4c3b2a",
		PipelineName:   "check",
		JobUUID:        "4e2d1c0b9a8f47e6b5d4c3b2a1908f7e",
		JobName:        "openstack-tox-py310",
		SpanStartNanos: 1690929000123456768,
	})
	require.Equal(t, string(fixture(t, "node-request-zuul-new.json")), string(got))
}

func TestEncodeZuulNodeMatchesFixtures(t *testing.T) {
	m, err := parseMembers(fixture(t, "node.json"))
	require.NoError(t, err)
	m.set("state", rawString("in-use"))
	m.set("state_time", rawFloat(1690929400.3141594))
	m.set("user_data", []byte(`{"zuul_system": "c3a1e59b6f2d4a0e9b7d8f1e2a3b4c5d", "project_name": "opendev.org/openstack/nova"}`))
	inUse := encodeZuulNode("0000004321", m)
	require.Equal(t, string(fixture(t, "node-in-use-zuul.json")), string(inUse))

	// Zuul re-reads its own write (with "id") and writes used / hold.
	m, err = parseMembers(inUse)
	require.NoError(t, err)
	m.set("state", rawString("used"))
	m.set("state_time", rawFloat(1690930123.2718282))
	require.Equal(t, string(fixture(t, "node-used-zuul.json")), string(encodeZuulNode("0000004321", m)))

	m, err = parseMembers(inUse)
	require.NoError(t, err)
	m.set("hold_job", rawNullString("openstack opendev.org/openstack/nova openstack-tox-py310 .*"))
	m.set("comment", rawNullString("debug intermittent failure"))
	m.set("hold_expiration", rawInt(86400))
	m.set("state", rawString("hold"))
	m.set("state_time", rawFloat(1690930123.2718282))
	require.Equal(t, string(fixture(t, "node-hold-zuul.json")), string(encodeZuulNode("0000004321", m)))
}

func TestEncodeZuulNodeKeepsUnknownKeysInReadOrder(t *testing.T) {
	m, err := parseMembers([]byte(`{"state": "ready", "x_new": {"a": [1, 2.5]}, "type": ["l"], "tenant_name": "t"}`))
	require.NoError(t, err)
	m.set("state", rawString("in-use"))
	got := encodeZuulNode("0000000001", m)
	require.Equal(t, `{"id": "0000000001", "state": "in-use", "hold_job": null, "comment": null, "user_data": null, "tenant_name": "t", "requestor": null, "x_new": {"a": [1, 2.5]}, "type": ["l"]}`, string(got))
}
