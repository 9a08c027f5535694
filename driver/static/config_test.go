package static

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/driver"
)

func TestParseDefaults(t *testing.T) {
	p := mustParse(t, `
name: st
driver: static
pools:
  - name: main
    nodes:
      - name: host1.example.org
        labels: [small]
`)
	require.Equal(t, "st", p.Name)
	require.Equal(t, Name, p.Driver)
	require.False(t, p.PausesAtQuota, "static providers never pause at quota")
	require.False(t, p.ManageImages, "static providers take no uploads")
	require.Equal(t, -1, p.MaxConcurrency)
	require.Nil(t, p.Priority)
	pool := p.Pool("main")
	require.NotNil(t, pool)
	require.Equal(t, driver.Unlimited, pool.MaxServers)
	require.Nil(t, pool.NodeAttributes)
	require.Equal(t, []*Node{{
		Name:            "host1.example.org",
		Labels:          []string{"small"},
		Username:        "zuul",
		Timeout:         5 * time.Second,
		HostKeyChecking: true,
		ConnectionType:  "ssh",
		ConnectionPort:  22,
		PythonPath:      "auto",
		MaxParallelJobs: 1,
	}}, nodes(t, p, "main"))
	require.Equal(t, []*driver.LabelConfig{{
		Name: "small", Username: "zuul", PythonPath: "auto", ConnectionType: "ssh",
		ConnectionPort: 22, HostKeyChecking: true,
	}}, pool.Labels)
}

func TestParseEveryKey(t *testing.T) {
	p := mustParse(t, `
name: st
driver: static
max-concurrency: 4
priority: 7
pools:
  - name: main
    max-servers: 3
    priority: 2
    node-attributes: {rack: r1, weight: 3}
    nodes:
      - name: win.example.org
        labels: [win, big]
        username: admin
        timeout: 13
        host-key-checking: false
        host-key: ["ssh-ed25519 AAAAone", "ssh-rsa AAAAtwo"]
        connection-port: 5986
        connection-type: winrm
        shell-type: cmd
        max-parallel-jobs: 4
        python-path: /usr/bin/python3
`)
	require.Equal(t, 4, p.MaxConcurrency)
	require.NotNil(t, p.Priority)
	require.Equal(t, 7, *p.Priority)
	pool := p.Pool("main")
	require.Equal(t, 3, pool.MaxServers)
	require.NotNil(t, pool.Priority)
	require.Equal(t, 2, *pool.Priority)
	require.Equal(t, map[string]any{"rack": "r1", "weight": 3}, pool.NodeAttributes)
	require.Equal(t, []*Node{{
		Name:            "win.example.org",
		Labels:          []string{"win", "big"},
		Username:        "admin",
		Timeout:         13 * time.Second,
		HostKeyChecking: false,
		HostKeys:        []string{"ssh-ed25519 AAAAone", "ssh-rsa AAAAtwo"},
		ConnectionType:  "winrm",
		ConnectionPort:  5986,
		ShellType:       "cmd",
		PythonPath:      "/usr/bin/python3",
		MaxParallelJobs: 4,
	}}, nodes(t, p, "main"))
	// Every label of the host becomes a pool label carrying its settings.
	want := driver.LabelConfig{Username: "admin", PythonPath: "/usr/bin/python3", ShellType: "cmd",
		ConnectionType: "winrm", ConnectionPort: 5986, HostKeyChecking: false}
	require.Equal(t, []string{"win", "big"}, pool.LabelNames())
	for _, l := range pool.Labels {
		got := *l
		got.Name = ""
		require.Equal(t, want, got, "label %s", l.Name)
	}
}

func TestParseLabelsAndHostKeyForms(t *testing.T) {
	p := mustParse(t, `
name: st
driver: static
pools:
  - name: main
    nodes:
      - name: a
        labels: "small  large	tiny"
        host-key: ssh-ed25519 AAAAone
      - name: b
        labels: [large, other]
        username: other
        host-key: ""
      - name: c
        labels: ""
        host-key: []
`)
	ns := nodes(t, p, "main")
	require.Len(t, ns, 3)
	require.Equal(t, []string{"small", "large", "tiny"}, ns[0].Labels, "a string of labels is split on white space")
	require.Equal(t, []string{"ssh-ed25519 AAAAone"}, ns[0].HostKeys, "a host-key string is one key")
	require.Equal(t, []string{"large", "other"}, ns[1].Labels)
	require.Empty(t, ns[1].HostKeys, "an empty host-key string means no keys")
	require.Empty(t, ns[2].Labels, "an empty labels string offers no label")
	require.Empty(t, ns[2].HostKeys)
	// The pool offers the union, in order of first appearance; a label's
	// settings come from the first host that offers it.
	pool := p.Pool("main")
	require.Equal(t, []string{"small", "large", "tiny", "other"}, pool.LabelNames())
	require.Equal(t, "zuul", pool.Label("large").Username)
	require.Equal(t, "other", pool.Label("other").Username)
}

func TestParsePorts(t *testing.T) {
	p := mustParse(t, `
name: st
driver: static
pools:
  - name: main
    nodes:
      - {name: legacy, labels: [a], ssh-port: 2022}
      - {name: both, labels: [a], ssh-port: 2022, connection-port: 2200}
      - {name: win, labels: [a], connection-type: winrm}
`)
	ns := nodes(t, p, "main")
	require.Equal(t, 2022, ns[0].ConnectionPort, "ssh-port is the legacy name of connection-port")
	require.Equal(t, 2200, ns[1].ConnectionPort, "connection-port wins over ssh-port")
	require.Equal(t, 22, ns[2].ConnectionPort, "the default port is 22 whatever the connection type")
}

func TestParseBooleanForms(t *testing.T) {
	p := mustParse(t, `
name: st
driver: static
pools:
  - name: main
    nodes:
      - {name: a, labels: [x], host-key-checking: no}
      - {name: b, labels: [x], host-key-checking: yes}
`)
	ns := nodes(t, p, "main")
	require.False(t, ns[0].HostKeyChecking, "YAML 1.1 no")
	require.True(t, ns[1].HostKeyChecking, "YAML 1.1 yes")
}

// staticPool wraps node entries (indented YAML list items) into a provider.
func staticPool(nodeLines string) string {
	return "name: st\ndriver: static\npools:\n  - name: main\n    nodes:\n" + nodeLines
}

func TestParseErrorsNameTheKey(t *testing.T) {
	const n = "providers[0].pools[0].nodes[0]."
	for _, tc := range []struct {
		name, node, want string
	}{
		{"name missing", `{labels: [a]}`, n + "name: required key not provided"},
		{"name not a string", `{name: 10, labels: [a]}`, n + "name: expected str, got int 10"},
		{"labels missing", `{name: h}`, n + "labels: required key not provided"},
		{"labels not a list", `{name: h, labels: 5}`, n + "labels: expected str or list, got int 5"},
		{"label not a string", `{name: h, labels: [a, 1]}`, n + "labels[1]: expected str, got int 1"},
		{"username", `{name: h, labels: [a], username: 5}`, n + "username: expected str, got int 5"},
		{"timeout", `{name: h, labels: [a], timeout: soon}`, n + `timeout: expected int, got str "soon"`},
		{"host-key-checking", `{name: h, labels: [a], host-key-checking: maybe}`, n + `host-key-checking: expected bool, got str "maybe"`},
		{"host-key", `{name: h, labels: [a], host-key: {k: v}}`, n + "host-key: expected str or list, got a dictionary"},
		{"host-key entry", `{name: h, labels: [a], host-key: [7]}`, n + "host-key[0]: expected str, got int 7"},
		{"connection-port", `{name: h, labels: [a], connection-port: "22"}`, n + `connection-port: expected int, got str "22"`},
		{"ssh-port", `{name: h, labels: [a], ssh-port: x}`, n + `ssh-port: expected int, got str "x"`},
		{"connection-type", `{name: h, labels: [a], connection-type: 1}`, n + "connection-type: expected str, got int 1"},
		{"shell-type", `{name: h, labels: [a], shell-type: []}`, n + "shell-type: expected str, got a list"},
		{"max-parallel-jobs", `{name: h, labels: [a], max-parallel-jobs: 1.5}`, n + "max-parallel-jobs: expected int, got float 1.5"},
		{"python-path", `{name: h, labels: [a], python-path: true}`, n + "python-path: expected str, got bool true"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := staticPool("      - " + tc.node + "\n")
			for _, strict := range []bool{false, true} {
				_, probs := parse(t, src, strict)
				require.Equal(t, []string{tc.want}, messages(probs.Errors), "strict=%v", strict)
			}
		})
	}
}

func TestParseUnknownKeys(t *testing.T) {
	src := `
name: st
driver: static
launch-timeout: 10
pools:
  - name: main
    labels: [a]
    nodes:
      - {name: h, labels: [a], flavor: big}
`
	// config-validate refuses keys the static driver does not have,
	// including the ones other drivers accept.
	_, strict := parse(t, src, true)
	require.ElementsMatch(t, []string{
		"providers[0].launch-timeout: extra keys not allowed",
		"providers[0].pools[0].labels: extra keys not allowed",
		"providers[0].pools[0].nodes[0].flavor: extra keys not allowed",
	}, messages(strict.Errors))
	// Loading only warns.
	_, load := parse(t, src, false)
	require.Empty(t, load.Errors)
	require.ElementsMatch(t, []string{
		"providers[0].launch-timeout: unknown key ignored",
		"providers[0].pools[0].labels: unknown key ignored",
		"providers[0].pools[0].nodes[0].flavor: unknown key ignored",
	}, messages(load.Warnings))
}

func TestParseNullValues(t *testing.T) {
	src := staticPool("      - {name: h, labels: [a], username: null, timeout: null, max-parallel-jobs: null}\n")
	_, strict := parse(t, src, true)
	require.ElementsMatch(t, []string{
		"providers[0].pools[0].nodes[0].username: expected str, got null",
		"providers[0].pools[0].nodes[0].timeout: expected int, got null",
		"providers[0].pools[0].nodes[0].max-parallel-jobs: expected int, got null",
	}, messages(strict.Errors))
	p, load := parse(t, src, false)
	require.Empty(t, load.Errors, "loading takes a null as the default")
	n := nodes(t, p, "main")[0]
	require.Equal(t, "zuul", n.Username)
	require.Equal(t, 5*time.Second, n.Timeout)
	require.Equal(t, 1, n.MaxParallelJobs)
}

func TestParseProviderErrors(t *testing.T) {
	for _, tc := range []struct {
		name, provider, want string
	}{
		{"name missing", "driver: static\npools: []\n", "providers[0].name: required key not provided"},
		{"max-concurrency", "name: st\ndriver: static\nmax-concurrency: x\n", `providers[0].max-concurrency: expected int, got str "x"`},
		{"priority", "name: st\ndriver: static\npriority: [1]\n", "providers[0].priority: expected int, got a list"},
		{"pools not a list", "name: st\ndriver: static\npools: {name: main}\n", "providers[0].pools: expected list, got a dictionary"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, strict := range []bool{false, true} {
				_, probs := parse(t, tc.provider, strict)
				require.Equal(t, []string{tc.want}, messages(probs.Errors), "strict=%v", strict)
			}
		})
	}
}

func TestParsePoolErrors(t *testing.T) {
	for _, tc := range []struct {
		name, pool, want string
	}{
		{"priority", "  - name: main\n    priority: high\n", `providers[0].pools[0].priority: expected int, got str "high"`},
		{"pool name missing", "  - nodes: []\n", "providers[0].pools[0].name: required key not provided"},
		{"node-attributes", "  - name: main\n    node-attributes: [a]\n", "providers[0].pools[0].node-attributes: expected a dictionary"},
		{"max-servers", "  - name: main\n    max-servers: lots\n", `providers[0].pools[0].max-servers: expected int, got str "lots"`},
		{"nodes not a list", "  - name: main\n    nodes: {name: h}\n", "providers[0].pools[0].nodes: expected list, got a dictionary"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, strict := range []bool{false, true} {
				_, probs := parse(t, "name: st\ndriver: static\npools:\n"+tc.pool, strict)
				require.Equal(t, []string{tc.want}, messages(probs.Errors), "strict=%v", strict)
			}
		})
	}
}

func TestParseDuplicateHosts(t *testing.T) {
	src := `
name: st
driver: static
pools:
  - name: one
    nodes:
      - {name: h, labels: [a]}
      - {name: h, labels: [a], username: other}
      - {name: h, labels: [a], connection-port: 2022}
  - name: two
    nodes:
      - {name: h, labels: [b]}
`
	// A host is (name, username, port): the first three are distinct, the
	// fourth repeats the first in another pool.
	_, load := parse(t, src, false)
	require.Equal(t, []string{
		"providers[0].pools[1].nodes[0].name: static node h (username zuul, port 22) is defined more than once",
	}, messages(load.Errors))
	// config-validate checks the schema only.
	_, strict := parse(t, src, true)
	require.Empty(t, messages(strict.Errors))
}

func TestParseErrorsCarryTheLine(t *testing.T) {
	src := staticPool("      - name: h\n        labels: [a]\n        timeout: soon\n")
	_, probs := parse(t, src, false)
	require.Len(t, probs.Errors, 1)
	e := probs.Errors[0]
	require.Equal(t, 8, e.Line, "timeout is on the eighth line")
	require.True(t, strings.HasPrefix(e.Error(), "nodepool.yaml:8: providers[0].pools[0].nodes[0].timeout: "), e.Error())
}
