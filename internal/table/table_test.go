package table

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRenderSpecExample(t *testing.T) {
	got := Render([]string{"Build ID", "Image", "State"},
		[][]string{{"5f0c6e1c2b7d4e3f9a1b2c3d4e5f6a7b", "ubuntu-jammy", "ready"}})
	want := `+----------------------------------+--------------+-------+
| Build ID                         | Image        | State |
+----------------------------------+--------------+-------+
| 5f0c6e1c2b7d4e3f9a1b2c3d4e5f6a7b | ubuntu-jammy | ready |
+----------------------------------+--------------+-------+`
	require.Equal(t, want, got)
}

func TestRenderEmpty(t *testing.T) {
	got := Render([]string{"Provider", "Name", "Image ID"}, nil)
	want := `+----------+------+----------+
| Provider | Name | Image ID |
+----------+------+----------+
+----------+------+----------+`
	require.Equal(t, want, got)
}

func TestRenderMultiLine(t *testing.T) {
	got := Render([]string{"A", "B"}, [][]string{{"x\nlonger", "y"}, {"", "z"}})
	want := `+--------+---+
| A      | B |
+--------+---+
| x      | y |
| longer |   |
|        | z |
+--------+---+`
	require.Equal(t, want, got)
}

func TestRenderWide(t *testing.T) {
	got := Render([]string{"L"}, [][]string{{"日本"}, {"ab"}})
	want := `+------+
| L    |
+------+
| 日本 |
| ab   |
+------+`
	require.Equal(t, want, got)
	require.Equal(t, 0, Width("\u0301"))
	require.Equal(t, 3, Width("\033[31mred\033[0m"))
}

func TestRenderSpecDibImageList(t *testing.T) {
	got := Render([]string{"ID", "Image", "Builder", "Formats", "State", "Age"}, [][]string{
		{"ubuntu-jammy-5f0c6e1c2b7d4e3f9a1b2c3d4e5f6a7b", "ubuntu-jammy", "nb01.example.org", "qcow2,raw", "ready", "00:02:13:09"},
		{"ubuntu-jammy-0000000042", "ubuntu-jammy", "nb01.example.org", "qcow2,raw", "ready", "01:02:40:51"},
		{"centos-9-stream-9d2e41aa07c34b4c8f1e6b5a4c3d2e1f", "centos-9-stream", "nb02.example.org", "qcow2,tar", "building", "00:00:12:01"},
	})
	want := `+--------------------------------------------------+-----------------+------------------+-----------+----------+-------------+
| ID                                               | Image           | Builder          | Formats   | State    | Age         |
+--------------------------------------------------+-----------------+------------------+-----------+----------+-------------+
| ubuntu-jammy-5f0c6e1c2b7d4e3f9a1b2c3d4e5f6a7b    | ubuntu-jammy    | nb01.example.org | qcow2,raw | ready    | 00:02:13:09 |
| ubuntu-jammy-0000000042                          | ubuntu-jammy    | nb01.example.org | qcow2,raw | ready    | 01:02:40:51 |
| centos-9-stream-9d2e41aa07c34b4c8f1e6b5a4c3d2e1f | centos-9-stream | nb02.example.org | qcow2,tar | building | 00:00:12:01 |
+--------------------------------------------------+-----------------+------------------+-----------+----------+-------------+`
	require.Equal(t, want, got)
}

func TestAge(t *testing.T) {
	now := time.Unix(1690930000, 0)
	cases := []struct {
		dt   float64
		want string
	}{
		{2*3600 + 13*60 + 9, "00:02:13:09"},
		{12*86400 + 5, "12:00:00:05"},
		{123*86400 + 3600 + 2*60 + 3, "123:01:02:03"},
		{59.999, "00:00:00:59"},
		{0, "00:00:00:00"},
		{-1, "-1:23:59:59"},
	}
	for _, c := range cases {
		require.Equal(t, c.want, Age(now, 1690930000-c.dt), "dt=%v", c.dt)
	}
}
