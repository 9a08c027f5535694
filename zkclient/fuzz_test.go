package zkclient_test

import (
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/nodepool-go/nodepool/internal/pyjson"
	"github.com/nodepool-go/nodepool/zkclient"
)

// The fuzz targets check that decoding never panics and that whatever
// decodes is written so that it decodes again to an equal value. Seeds are
// in testdata/fuzz/<FuzzName>/ (the fixtures plus broken payloads).
//
// "Equal" is semantic: raw JSON values are compared in canonical
// (Python-style) form, nil and empty lists are the same, and fields the
// wire format cannot carry (Version; pool keys of a non-pool component;
// the order of build formats) are normalized.

func normRaw(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return nil
	}
	out, err := pyjson.AppendRaw(nil, raw)
	if err != nil {
		return raw
	}
	return out
}

func normList(l []string) []string {
	if len(l) == 0 {
		return nil
	}
	return l
}

func normExtra(ms []zkclient.Member) []zkclient.Member {
	if len(ms) == 0 {
		return nil
	}
	out := make([]zkclient.Member, len(ms))
	for i, m := range ms {
		out[i] = zkclient.Member{Key: m.Key, Value: normRaw(m.Value)}
	}
	return out
}

func normNode(n *zkclient.Node) *zkclient.Node {
	c := n.Clone()
	c.Version = 0
	c.Type, c.HostKeys = normList(c.Type), normList(c.HostKeys)
	c.ConnectionPort = normRaw(c.ConnectionPort)
	c.UserData, c.Attributes, c.DriverData = normRaw(c.UserData), normRaw(c.Attributes), normRaw(c.DriverData)
	c.Extra = normExtra(c.Extra)
	return c
}

func normRequest(r *zkclient.NodeRequest) *zkclient.NodeRequest {
	c := r.Clone()
	c.Version, c.Size = 0, 0
	c.DeclinedBy, c.NodeTypes, c.Nodes = normList(c.DeclinedBy), normList(c.NodeTypes), normList(c.Nodes)
	c.RequestorData = normRaw(c.RequestorData)
	c.Extra = normExtra(c.Extra)
	return c
}

func normBuild(b zkclient.ImageBuild) zkclient.ImageBuild {
	b.Version = 0
	// Formats travel as one sorted comma-joined string.
	f := append([]string(nil), b.Formats...)
	sort.Strings(f)
	b.Formats = nil
	if j := strings.Join(f, ","); j != "" {
		b.Formats = strings.Split(j, ",")
	}
	b.Extra = normExtra(b.Extra)
	return b
}

func normUpload(u zkclient.ImageUpload) zkclient.ImageUpload {
	u.Version = 0
	u.Extra = normExtra(u.Extra)
	return u
}

func normComponent(c zkclient.Component) zkclient.Component {
	c.Version = 0
	if c.Kind != zkclient.KindPool {
		c.ID, c.ProviderName, c.SupportedLabels, c.Priority, c.Paused = "", "", nil, 0, false
	}
	c.SupportedLabels = normList(c.SupportedLabels)
	// Components are written with sorted keys.
	c.Extra = normExtra(c.Extra)
	sort.SliceStable(c.Extra, func(i, j int) bool { return c.Extra[i].Key < c.Extra[j].Key })
	return c
}

func FuzzDecodeNode(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := zkclient.DecodeNode("0000000001", data)
		if err != nil {
			return
		}
		out := n.AppendJSON(nil)
		if !json.Valid(out) {
			t.Fatalf("invalid JSON written: %s", out)
		}
		n2, err := zkclient.DecodeNode("0000000001", out)
		if err != nil {
			t.Fatalf("own output does not decode: %v\n%s", err, out)
		}
		if a, b := normNode(n), normNode(n2); !reflect.DeepEqual(a, b) {
			t.Fatalf("round trip changed the node:\n%#v\n%#v\n%s", a, b, out)
		}
	})
}

func FuzzDecodeRequest(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := zkclient.DecodeRequest("200-0000000001", data)
		if err != nil {
			return
		}
		out := r.AppendJSON(nil)
		if !json.Valid(out) {
			t.Fatalf("invalid JSON written: %s", out)
		}
		r2, err := zkclient.DecodeRequest("200-0000000001", out)
		if err != nil {
			t.Fatalf("own output does not decode: %v\n%s", err, out)
		}
		if a, b := normRequest(r), normRequest(r2); !reflect.DeepEqual(a, b) {
			t.Fatalf("round trip changed the request:\n%#v\n%#v\n%s", a, b, out)
		}
	})
}

func FuzzDecodeBuild(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		b := &zkclient.ImageBuild{ImageName: "img", ID: "0000000001"}
		if err := b.UnmarshalJSON(data); err != nil {
			return
		}
		out, err := b.MarshalJSON()
		if err != nil || !json.Valid(out) {
			t.Fatalf("bad output %s (%v)", out, err)
		}
		b2 := &zkclient.ImageBuild{ImageName: "img", ID: "0000000001"}
		if err := b2.UnmarshalJSON(out); err != nil {
			t.Fatalf("own output does not decode: %v\n%s", err, out)
		}
		if x, y := normBuild(*b), normBuild(*b2); !reflect.DeepEqual(x, y) {
			t.Fatalf("round trip changed the build:\n%#v\n%#v\n%s", x, y, out)
		}
	})
}

func FuzzDecodeUpload(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		u := &zkclient.ImageUpload{ImageName: "img", BuildID: "b", ProviderName: "p", ID: "0000000001"}
		if err := u.UnmarshalJSON(data); err != nil {
			return
		}
		out, err := u.MarshalJSON()
		if err != nil || !json.Valid(out) {
			t.Fatalf("bad output %s (%v)", out, err)
		}
		u2 := &zkclient.ImageUpload{ImageName: "img", BuildID: "b", ProviderName: "p", ID: "0000000001"}
		if err := u2.UnmarshalJSON(out); err != nil {
			t.Fatalf("own output does not decode: %v\n%s", err, out)
		}
		if x, y := normUpload(*u), normUpload(*u2); !reflect.DeepEqual(x, y) {
			t.Fatalf("round trip changed the upload:\n%#v\n%#v\n%s", x, y, out)
		}
	})
}

func FuzzDecodeComponent(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &zkclient.Component{Name: "nl010000000001"}
		if err := c.UnmarshalJSON(data); err != nil {
			return
		}
		out, err := c.MarshalJSON()
		if err != nil || !json.Valid(out) {
			t.Fatalf("bad output %s (%v)", out, err)
		}
		c2 := &zkclient.Component{Name: "nl010000000001"}
		if err := c2.UnmarshalJSON(out); err != nil {
			t.Fatalf("own output does not decode: %v\n%s", err, out)
		}
		if x, y := normComponent(*c), normComponent(*c2); !reflect.DeepEqual(x, y) {
			t.Fatalf("round trip changed the component:\n%#v\n%#v\n%s", x, y, out)
		}
	})
}
