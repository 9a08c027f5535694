package zkclient_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/zkclient"
)

// readFixture returns the bytes of testdata/fixtures/<name>.
func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "fixtures", name))
	require.NoError(t, err)
	return b
}

// roundTrip decodes data with the type its fixture name implies and
// re-encodes it.
func roundTrip(t testing.TB, name string, data []byte) []byte {
	t.Helper()
	var (
		out []byte
		err error
	)
	switch {
	case strings.HasPrefix(name, "node-request"):
		var r *zkclient.NodeRequest
		r, err = zkclient.DecodeRequest("200-0000001234", data)
		require.NoError(t, err, name)
		out, err = r.MarshalJSON()
	case strings.HasPrefix(name, "node"):
		var n *zkclient.Node
		n, err = zkclient.DecodeNode("0000004321", data)
		require.NoError(t, err, name)
		out, err = n.MarshalJSON()
	case strings.HasPrefix(name, "image-build"):
		b := &zkclient.ImageBuild{ImageName: "ubuntu-jammy", ID: "7c1fd2b0a4e94c7e8f3b2a1d0c9e8f7a"}
		require.NoError(t, b.UnmarshalJSON(data), name)
		out, err = b.MarshalJSON()
	case strings.HasPrefix(name, "image-upload"):
		u := &zkclient.ImageUpload{ImageName: "ubuntu-jammy", ID: "0000000003"}
		require.NoError(t, u.UnmarshalJSON(data), name)
		out, err = u.MarshalJSON()
	case strings.HasPrefix(name, "component"):
		c := &zkclient.Component{Name: "nl010000000041"}
		require.NoError(t, c.UnmarshalJSON(data), name)
		out, err = c.MarshalJSON()
	default:
		t.Fatalf("no decoder for fixture %s", name)
	}
	require.NoError(t, err, name)
	return out
}

// readDefaults are the keys a fresh Zuul request lacks; a reader applies
// these defaults and nodepool's writer then writes them out.
var readDefaults = map[string]map[string]any{
	"node-request-zuul-new.json": {"declined_by": []any{}, "nodes": []any{}, "reuse": true},
}

func requireJSONEqual(t testing.TB, want, got []byte, msg string) {
	t.Helper()
	var a, b any
	require.NoError(t, json.Unmarshal(want, &a), msg)
	for k, v := range readDefaults[msg] {
		m := a.(map[string]any)
		_, present := m[k]
		require.False(t, present, "%s: default key %s present", msg, k)
		m[k] = v
	}
	require.NoError(t, json.Unmarshal(got, &b), "%s: output is not JSON: %s", msg, got)
	require.Equal(t, a, b, msg)
}

// nodepoolWritten reports whether the fixture is output of a serializer we
// reproduce (byte-identical expected).
func nodepoolWritten(name string) bool {
	return !strings.Contains(name, "-zuul")
}

func TestFixtureRoundTrip(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "fixtures", "*.json"))
	require.NoError(t, err)
	require.Len(t, files, 23, "all spec fixtures copied")
	for _, f := range files {
		name := filepath.Base(f)
		if name == "export-image-data.json" {
			continue
		}
		t.Run(strings.TrimSuffix(name, ".json"), func(t *testing.T) {
			data := readFixture(t, name)
			out := roundTrip(t, name, data)
			requireJSONEqual(t, data, out, name)
			if nodepoolWritten(name) {
				require.Equal(t, string(data), string(out), "byte-identical output")
			}
			// A second round trip is stable.
			require.Equal(t, string(out), string(roundTrip(t, name, out)))
		})
	}
}

// TestFixtureZuulKeyOrder documents what happens to Zuul-written records:
// the value survives (including Zuul's extra "id" key, moved to the end),
// and a fresh Zuul request gains nodepool's full key set with defaults.
func TestFixtureZuulKeyOrder(t *testing.T) {
	out := roundTrip(t, "node-in-use-zuul.json", readFixture(t, "node-in-use-zuul.json"))
	require.True(t, strings.HasPrefix(string(out), `{"state": "in-use", "state_time": `), string(out))
	require.True(t, strings.HasSuffix(string(out), `, "id": "0000004321"}`), string(out))

	out = roundTrip(t, "node-request-zuul-new.json", readFixture(t, "node-request-zuul-new.json"))
	var m map[string]any
	require.NoError(t, json.Unmarshal(out, &m))
	require.Equal(t, []any{}, m["declined_by"])
	require.Equal(t, []any{}, m["nodes"])
	require.Equal(t, true, m["reuse"])
	require.Len(t, m, 13)
}

func TestFixtureExportImageData(t *testing.T) {
	var export map[string]string
	require.NoError(t, json.Unmarshal(readFixture(t, "export-image-data.json"), &export))
	require.Len(t, export, 3)
	kinds := map[string]int{}
	for p, v := range export {
		parts := strings.Split(p, "/")
		switch {
		case len(parts) == 5 && parts[4] == "pause":
			require.Empty(t, v, p)
			kinds["pause"]++
		case len(parts) == 6 && parts[4] == "builds":
			// ['', nodepool, images, <image>, builds, <id>]
			require.True(t, zkclient.ValidBuildID(parts[5]), p)
			b := &zkclient.ImageBuild{ImageName: parts[3], ID: parts[5]}
			require.NoError(t, b.UnmarshalJSON([]byte(v)), p)
			require.Equal(t, zkclient.ImageReady, b.State)
			require.Equal(t, []string{"qcow2", "raw"}, b.Formats)
			out, err := b.MarshalJSON()
			require.NoError(t, err)
			require.Equal(t, v, string(out), p)
			require.Equal(t, p, zkclient.BuildPath(b.ImageName, b.ID))
			kinds["build"]++
		case len(parts) == 10 && parts[8] == "images":
			u := &zkclient.ImageUpload{ImageName: parts[3], BuildID: parts[5], ProviderName: parts[7], ID: parts[9]}
			require.NoError(t, u.UnmarshalJSON([]byte(v)), p)
			require.Equal(t, "qcow2", u.Format)
			require.Equal(t, p, u.Path())
			out, err := u.MarshalJSON()
			require.NoError(t, err)
			require.Equal(t, v, string(out), p)
			kinds["upload"]++
		default:
			t.Fatalf("unexpected export key %s", p)
		}
	}
	require.Equal(t, map[string]int{"pause": 1, "build": 1, "upload": 1}, kinds)
}
