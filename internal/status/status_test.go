package status

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/internal/zktest"
	"github.com/nodepool-go/nodepool/zkclient"
)

func TestCellText(t *testing.T) {
	require.Equal(t, "", CellText(nil))
	require.Equal(t, "a,b", CellText([]string{"a", "b"}))
	require.Equal(t, "True", CellText(true))
	require.Equal(t, "False", CellText(false))
	require.Equal(t, "22", CellText(22))
	require.Equal(t, "{'k': 'v', 'n': 1, 'l': [True, None], \"it's\": {'a': 'b'}}",
		CellText(json.RawMessage(`{"k": "v", "n": 1, "l": [true, null], "it's": {"a": "b"}}`)))
}

func TestTableSelectAndJSON(t *testing.T) {
	tb := &Table{Columns: []Column{{"id", "ID"}, {"age", "Age"}, {"x_age", "X Age"}, {"l", "L"}},
		Rows: [][]any{{"1", int64(1690930000 - 61), nil, []string{}}}, Now: time.Unix(1690930000, 0)}
	require.Equal(t, "+----+-------------+-------+---+\n| ID | Age         | X Age | L |\n+----+-------------+-------+---+\n| 1  | 00:00:01:01 |       |   |\n+----+-------------+-------+---+", tb.Text())
	require.Equal(t, `[{"id": "1", "age": 1690929939, "x_age": null, "l": []}]`, string(tb.JSON()))
	s := tb.Select([]string{"l", "id", "nope"})
	require.Equal(t, []string{"id", "l"}, s.Fields())
	require.Equal(t, `[]`, string((&Table{Columns: NodeColumns}).JSON()))
}

func TestImageStatusBuilding(t *testing.T) {
	zk, _ := zktest.Connect(t)
	ctx := context.Background()
	src := &Source{ZK: zk, Now: func() time.Time { return time.Now() }}
	require.NoError(t, zk.RequestBuild(ctx, "img"))
	tb, err := src.ImageStatus(ctx)
	require.NoError(t, err)
	require.Equal(t, "pending", tb.Rows[0][2])
	require.Equal(t, false, tb.Rows[0][1])

	// A build running (lock contender) with a build record newer than the lock.
	lock := zk.NewLock(zkclient.BuildLockPath("img"))
	ok, err := lock.TryAcquire(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	time.Sleep(5 * time.Millisecond)
	b := &zkclient.ImageBuild{ImageName: "img", State: zkclient.ImageBuilding, StateTime: 1}
	require.NoError(t, zk.CreateBuild(ctx, b))
	tb, err = src.ImageStatus(ctx)
	require.NoError(t, err)
	require.Equal(t, "building", tb.Rows[0][2])
	require.NoError(t, lock.Release(ctx))
	tb, err = src.ImageStatus(ctx)
	require.NoError(t, err)
	require.Equal(t, "pending", tb.Rows[0][2])
}

func TestNodeDriverData(t *testing.T) {
	zk, _ := zktest.Connect(t)
	ctx := context.Background()
	n := &zkclient.Node{State: zkclient.NodeReady, DriverData: json.RawMessage(`{"slot": 1, "name": "x"}`),
		UserData: json.RawMessage(`{"zuul_system": "abc"}`)}
	_, err := zk.CreateNode(ctx, n)
	require.NoError(t, err)
	src := &Source{ZK: zk}
	tb, err := src.NodeList(ctx, "")
	require.NoError(t, err)
	require.Contains(t, tb.Text(), "| {'zuul_system': 'abc'} | {'slot': 1, 'name': 'x'} |")
	require.Contains(t, string(tb.JSON()), `"user_data": {"zuul_system": "abc"}, "driver_data": {"slot": 1, "name": "x"}}]`)
}
