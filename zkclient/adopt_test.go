package zkclient

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSetRecordMatchesItsData: a cache that takes a write adopts the
// record carried by NodeSet/RequestSet instead of decoding the data, so the
// record must be what decoding the data gives, for every node and request
// fixture.
func TestSetRecordMatchesItsData(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "fixtures", "node*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		name := filepath.Base(f)
		id := "0000000042"
		t.Run(strings.TrimSuffix(name, ".json"), func(t *testing.T) {
			data, err := os.ReadFile(f)
			require.NoError(t, err)
			var set SetOp
			var decoded any
			if strings.HasPrefix(name, "node-request") {
				r, err := DecodeRequest("100-"+id, data)
				require.NoError(t, err)
				set = RequestSet(r, 3)
				decoded, err = DecodeRequest("100-"+id, set.Data)
				require.NoError(t, err)
			} else {
				n, err := DecodeNode(id, data)
				require.NoError(t, err)
				set = NodeSet(n, 3)
				decoded, err = DecodeNode(id, set.Data)
				require.NoError(t, err)
			}
			require.Equal(t, emptyAsNil(decoded), emptyAsNil(set.record))
		})
	}
}

// emptyAsNil sets the record's empty lists to nil: decoding keeps "[]" as
// an empty list, a copy drops it, and both encode and read alike.
func emptyAsNil(rec any) any {
	nilIfEmpty := func(l *[]string) {
		if len(*l) == 0 {
			*l = nil
		}
	}
	switch x := rec.(type) {
	case *Node:
		c := *x
		nilIfEmpty(&c.Type)
		nilIfEmpty(&c.HostKeys)
		if len(c.Extra) == 0 {
			c.Extra = nil
		}
		return &c
	case *NodeRequest:
		c := *x
		nilIfEmpty(&c.DeclinedBy)
		nilIfEmpty(&c.NodeTypes)
		nilIfEmpty(&c.Nodes)
		if len(c.Extra) == 0 {
			c.Extra = nil
		}
		return &c
	}
	return rec
}
