package zkclient_test

import (
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/zkclient"
)

func intp(v int) *int { return &v }

func TestNodeReadingRules(t *testing.T) {
	tests := []struct {
		name  string
		data  string
		check func(t *testing.T, n *zkclient.Node)
	}{
		{"type bare string", `{"state": "ready", "type": "ubuntu"}`, func(t *testing.T, n *zkclient.Node) {
			require.Equal(t, []string{"ubuntu"}, n.Type)
		}},
		{"type empty string", `{"state": "ready", "type": ""}`, func(t *testing.T, n *zkclient.Node) {
			require.Empty(t, n.Type)
		}},
		{"type null", `{"state": "ready", "type": null}`, func(t *testing.T, n *zkclient.Node) {
			require.Empty(t, n.Type)
		}},
		{"type list", `{"state": "ready", "type": ["a", "b"]}`, func(t *testing.T, n *zkclient.Node) {
			require.Equal(t, []string{"a", "b"}, n.Type)
		}},
		{"hold_expiration int", `{"state": "hold", "hold_expiration": 86400}`, func(t *testing.T, n *zkclient.Node) {
			require.Equal(t, intp(86400), n.HoldExpiration)
		}},
		{"hold_expiration float", `{"state": "hold", "hold_expiration": 3600.9}`, func(t *testing.T, n *zkclient.Node) {
			require.Equal(t, intp(3600), n.HoldExpiration)
		}},
		{"hold_expiration numeric string", `{"state": "hold", "hold_expiration": " 7200 "}`, func(t *testing.T, n *zkclient.Node) {
			require.Equal(t, intp(7200), n.HoldExpiration)
		}},
		{"hold_expiration float string is not int()", `{"state": "hold", "hold_expiration": "1.5"}`, func(t *testing.T, n *zkclient.Node) {
			require.Equal(t, intp(0), n.HoldExpiration)
		}},
		{"hold_expiration non-numeric", `{"state": "hold", "hold_expiration": "forever"}`, func(t *testing.T, n *zkclient.Node) {
			require.Equal(t, intp(0), n.HoldExpiration)
		}},
		{"hold_expiration object", `{"state": "hold", "hold_expiration": {"a": 1}}`, func(t *testing.T, n *zkclient.Node) {
			require.Equal(t, intp(0), n.HoldExpiration)
		}},
		{"hold_expiration infinity", `{"state": "hold", "hold_expiration": Infinity}`, func(t *testing.T, n *zkclient.Node) {
			require.Equal(t, intp(0), n.HoldExpiration)
		}},
		{"hold_expiration null", `{"state": "hold", "hold_expiration": null}`, func(t *testing.T, n *zkclient.Node) {
			require.Nil(t, n.HoldExpiration)
		}},
		{"username absent", `{"state": "ready"}`, func(t *testing.T, n *zkclient.Node) {
			require.Equal(t, "zuul", n.Username)
			require.Contains(t, encode(t, n), `"username": "zuul"`)
		}},
		{"username null", `{"state": "ready", "username": null}`, func(t *testing.T, n *zkclient.Node) {
			require.Equal(t, "", n.Username)
			require.Contains(t, encode(t, n), `"username": null`)
		}},
		{"port defaults to 22", `{"state": "ready"}`, func(t *testing.T, n *zkclient.Node) {
			require.Equal(t, 22, n.Port())
			require.Contains(t, encode(t, n), `"connection_port": 22, "ssh_port": 22`)
		}},
		{"port from ssh_port", `{"state": "ready", "ssh_port": 2222}`, func(t *testing.T, n *zkclient.Node) {
			require.Equal(t, 2222, n.Port())
			require.Contains(t, encode(t, n), `"connection_port": 2222, "ssh_port": 2222`)
		}},
		{"port object", `{"state": "ready", "connection_port": {"name": "ns", "skiptls": false}}`, func(t *testing.T, n *zkclient.Node) {
			require.Equal(t, 0, n.Port())
			require.Contains(t, encode(t, n), `"connection_port": {"name": "ns", "skiptls": false}, "ssh_port": {"name": "ns", "skiptls": false}`)
		}},
		{"python special floats", `{"state": "ready", "state_time": NaN, "resources": {"cores": Infinity, "ram": -Infinity, "x": NaN}, "attributes": {"q": Infinity}}`, func(t *testing.T, n *zkclient.Node) {
			require.Zero(t, n.StateTime)
			require.Equal(t, map[string]float64{"cores": 1.7976931348623157e+308, "ram": -1.7976931348623157e+308}, n.Resources)
			out := encode(t, n)
			require.NotContains(t, out, "Infinity")
			require.NotContains(t, out, "NaN")
			require.True(t, json.Valid([]byte(out)))
		}},
		{"unknown keys survive", `{"id": "0000000001", "state": "in-use", "zuul_private": {"a": [1, 2.0]}, "x": null}`, func(t *testing.T, n *zkclient.Node) {
			require.Equal(t, []zkclient.Member{{Key: "id", Value: json.RawMessage(`"0000000001"`)}, {Key: "zuul_private", Value: json.RawMessage(`{"a": [1, 2.0]}`)}, {Key: "x"}}, n.Extra)
			require.True(t, strings.HasSuffix(encode(t, n), `"requestor": null, "id": "0000000001", "zuul_private": {"a": [1, 2.0]}, "x": null}`), encode(t, n))
		}},
		{"user_data verbatim", `{"state": "ready", "user_data": "{\"backing_node\": \"1\"}"}`, func(t *testing.T, n *zkclient.Node) {
			require.Equal(t, `"{\"backing_node\": \"1\"}"`, string(n.UserData))
		}},
		{"resources order", `{"state": "ready", "resources": {"volumes": 1, "ram": 2, "instances": 1, "cores": 1.5}}`, func(t *testing.T, n *zkclient.Node) {
			require.Contains(t, encode(t, n), `"resources": {"cores": 1.5, "instances": 1, "ram": 2, "volumes": 1}`)
		}},
		{"whitespace and order irrelevant", "\n{ \"type\":[\"a\"] ,\n\"state\":\"used\"}\n", func(t *testing.T, n *zkclient.Node) {
			require.Equal(t, zkclient.NodeUsed, n.State)
			require.Equal(t, []string{"a"}, n.Type)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := zkclient.DecodeNode("0000000001", []byte(tt.data))
			require.NoError(t, err)
			require.Equal(t, "0000000001", n.ID)
			tt.check(t, n)
			// What we write reads back to the same record.
			n2, err := zkclient.DecodeNode(n.ID, n.AppendJSON(nil))
			require.NoError(t, err)
			require.Equal(t, normNode(n), normNode(n2))
		})
	}
}

func encode(t *testing.T, m json.Marshaler) string {
	t.Helper()
	b, err := m.MarshalJSON()
	require.NoError(t, err)
	return string(b)
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name   string
		data   string
		decode func([]byte) error
		is     error
		substr string
	}{
		{"node empty", ``, decNode, zkclient.ErrEmpty, ""},
		{"node whitespace", " \n", decNode, zkclient.ErrEmpty, ""},
		{"node unknown state", `{"state": "exploded"}`, decNode, nil, `unknown node state "exploded"`},
		{"node no state", `{"type": []}`, decNode, nil, "no state"},
		{"node not object", `[1]`, decNode, nil, "expected a JSON object"},
		{"node bad json", `{"state": `, decNode, nil, "invalid JSON"},
		{"node wrong type", `{"state": "ready", "cloud": 5}`, decNode, nil, `key "cloud"`},
		{"node huge", `{"state": "ready", "comment": "` + strings.Repeat("x", zkclient.MaxPayload) + `"}`, decNode, nil, "exceeds"},
		{"request empty", ``, decRequest, zkclient.ErrEmpty, ""},
		{"request unknown state", `{"state": "accepted"}`, decRequest, nil, `unknown request state "accepted"`},
		{"request bad reuse", `{"state": "requested", "reuse": "yes"}`, decRequest, nil, "expected boolean"},
		{"build empty", ``, decBuild, zkclient.ErrEmpty, ""},
		{"build uploading state", `{"state": "uploading"}`, decBuild, nil, "unknown build state"},
		{"upload building state", `{"state": "building"}`, decUpload, nil, "unknown upload state"},
		{"upload empty", ``, decUpload, zkclient.ErrEmpty, ""},
		{"component empty", ``, decComponent, zkclient.ErrEmpty, ""},
		{"component bad", `{"kind": 1}`, decComponent, nil, "expected string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.decode([]byte(tt.data))
			require.Error(t, err)
			if tt.is != nil {
				require.True(t, errors.Is(err, tt.is), "%v is not %v", err, tt.is)
			}
			require.Contains(t, err.Error(), tt.substr)
		})
	}
}

func decNode(b []byte) error    { _, err := zkclient.DecodeNode("1", b); return err }
func decRequest(b []byte) error { _, err := zkclient.DecodeRequest("100-0000000001", b); return err }
func decBuild(b []byte) error   { return (&zkclient.ImageBuild{}).UnmarshalJSON(b) }
func decUpload(b []byte) error  { return (&zkclient.ImageUpload{}).UnmarshalJSON(b) }
func decComponent(b []byte) error {
	return (&zkclient.Component{}).UnmarshalJSON(b)
}

func TestRequestReadingRules(t *testing.T) {
	tests := []struct {
		name  string
		data  string
		check func(t *testing.T, r *zkclient.NodeRequest)
	}{
		{"defaults", `{"state": "requested"}`, func(t *testing.T, r *zkclient.NodeRequest) {
			require.True(t, r.Reuse)
			require.Empty(t, r.DeclinedBy)
			require.Empty(t, r.Nodes)
			require.Zero(t, r.RelativePriority)
			require.Equal(t, `{"state": "requested", "state_time": null, "declined_by": [], "node_types": [], "nodes": [], "reuse": true, "requestor": null, "requestor_data": null, "provider": null, "relative_priority": 0, "event_id": null, "created_time": null, "tenant_name": null}`, encode(t, r))
		}},
		{"reuse null is default", `{"state": "requested", "reuse": null}`, func(t *testing.T, r *zkclient.NodeRequest) {
			require.True(t, r.Reuse)
		}},
		{"reuse false", `{"state": "requested", "reuse": false}`, func(t *testing.T, r *zkclient.NodeRequest) {
			require.False(t, r.Reuse)
		}},
		{"relative priority float", `{"state": "pending", "relative_priority": 3.0}`, func(t *testing.T, r *zkclient.NodeRequest) {
			require.Equal(t, 3, r.RelativePriority)
		}},
		{"requestor_data verbatim", `{"state": "pending", "requestor_data": {"z": 1, "a": [1.50]}}`, func(t *testing.T, r *zkclient.NodeRequest) {
			require.Contains(t, encode(t, r), `"requestor_data": {"z": 1, "a": [1.50]}`)
		}},
		{"unknown keys survive", `{"state": "pending", "future": true}`, func(t *testing.T, r *zkclient.NodeRequest) {
			require.True(t, strings.HasSuffix(encode(t, r), `"tenant_name": null, "future": true}`))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := zkclient.DecodeRequest("200-0000001234", []byte(tt.data))
			require.NoError(t, err)
			require.Equal(t, "200", r.Priority())
			require.Equal(t, "0000001234", r.Sequence())
			tt.check(t, r)
		})
	}
}

func TestBuildReadingRules(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		formats []string
		out     string
	}{
		{"string formats", `{"state": "ready", "formats": "qcow2,raw"}`, []string{"qcow2", "raw"},
			`{"state": "ready", "state_time": null, "formats": "qcow2,raw", "username": "zuul", "python_path": "/usr/bin/python2", "shell_type": null}`},
		{"list formats sorted on write", `{"state": "ready", "formats": ["vhd", "qcow2"]}`, []string{"vhd", "qcow2"},
			`{"state": "ready", "state_time": null, "formats": "qcow2,vhd", "username": "zuul", "python_path": "/usr/bin/python2", "shell_type": null}`},
		{"empty formats omitted", `{"state": "failed", "formats": "", "username": null, "python_path": null}`, nil,
			`{"state": "failed", "state_time": null, "username": null, "python_path": null, "shell_type": null}`},
		{"builder omitted when empty", `{"state": "building", "builder": null, "builder_id": ""}`, nil,
			`{"state": "building", "state_time": null, "username": "zuul", "python_path": "/usr/bin/python2", "shell_type": null}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &zkclient.ImageBuild{ImageName: "img", ID: "0000000002"}
			require.NoError(t, b.UnmarshalJSON([]byte(tt.data)))
			require.Equal(t, "img", b.ImageName)
			require.Equal(t, "0000000002", b.ID)
			require.Equal(t, tt.formats, b.Formats)
			require.Equal(t, tt.out, encode(t, b))
		})
	}
	u := &zkclient.ImageUpload{}
	require.NoError(t, u.UnmarshalJSON([]byte(`{"state": "ready"}`)))
	require.Equal(t, "zuul", u.Username)
	require.Equal(t, "/usr/bin/python2", u.PythonPath)
}

func TestComponentEncoding(t *testing.T) {
	c := &zkclient.Component{Kind: zkclient.KindPool, Hostname: "nl01", State: zkclient.ComponentRunning,
		ID: "x", ProviderName: "p", SupportedLabels: []string{"b", "a"}, Priority: 100,
		Extra: []zkclient.Member{{Key: "aaa", Value: json.RawMessage(`{"z":1}`)}}}
	require.Equal(t, `{"aaa": {"z": 1}, "hostname": "nl01", "id": "x", "kind": "pool", "model_api": 0, "paused": false, "priority": 100, "provider_name": "p", "state": "running", "supported_labels": ["b", "a"], "version": null}`, encode(t, c))

	l := &zkclient.Component{Kind: zkclient.KindLauncher, Hostname: "nl01", State: zkclient.ComponentStopped, Release: "9.0.0"}
	require.Equal(t, `{"hostname": "nl01", "kind": "launcher", "model_api": 0, "state": "stopped", "version": "9.0.0"}`, encode(t, l))

	d := &zkclient.Component{}
	require.NoError(t, d.UnmarshalJSON([]byte(`{"kind": "pool"}`)))
	require.Equal(t, 100, d.Priority, "priority default")
}

func TestIDs(t *testing.T) {
	for _, tt := range []struct {
		id string
		ok bool
	}{
		{"7c1fd2b0a4e94c7e8f3b2a1d0c9e8f7a", true},
		{"0000000002", true},
		{"7C1FD2B0A4E94C7E8F3B2A1D0C9E8F7A", false},
		{"7c1fd2b0-a4e9-4c7e-8f3b-2a1d0c9e8f7a", false},
		{"000000002", false},
		{"lock", false},
		{"", false},
	} {
		require.Equal(t, tt.ok, zkclient.ValidBuildID(tt.id), tt.id)
	}
	hex32 := regexp.MustCompile(`^[0-9a-f]{32}$`)
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		id := zkclient.NewBuildID()
		require.Regexp(t, hex32, id)
		require.True(t, zkclient.ValidBuildID(id))
		require.False(t, seen[id])
		seen[id] = true
	}
	for _, tt := range []struct {
		id string
		ok bool
	}{
		{"200-0000001234", true},
		{"099-0000000001", true},
		{"abc-1", true},
		{"20-0000001234", false},
		{"2000-0000001234", false},
		{"200-", false},
		{"200-00000a1234", false},
		{"200-0000-1234", false},
		{"2000000001234", false},
	} {
		require.Equal(t, tt.ok, zkclient.ValidRequestID(tt.id), tt.id)
	}
}
