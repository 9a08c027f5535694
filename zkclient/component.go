package zkclient

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/nodepool-go/nodepool/internal/pyjson"
)

// Component kinds registered under /nodepool/components.
const (
	KindLauncher = "launcher"
	KindPool     = "pool"
	KindBuilder  = "builder"
)

// Component states.
const (
	ComponentInitializing = "initializing"
	ComponentRunning      = "running"
	ComponentPaused       = "paused"
	ComponentStopped      = "stopped"
)

// ModelAPI is the model API version this implementation speaks.
const ModelAPI = 0

// Component is a registration under /nodepool/components/<kind>/. The pool
// fields are only written for kind "pool".
type Component struct {
	Name     string // znode name "<hostname><seq>"
	Version  int32  // znode data version, for optimistic updates
	Kind     string // KindLauncher, KindPool or KindBuilder
	Hostname string // the host the component runs on
	ModelAPI int    // model_api (ModelAPI for us)
	State    string // ComponentRunning, ComponentPaused, ...
	Release  string // the "version" key: our release string, or null

	// Pool components only.
	ID              string
	ProviderName    string   // provider_name of a pool
	SupportedLabels []string // the pool's labels, in config order
	Priority        int      // the pool's effective priority (lower is preferred)
	Paused          bool     // true while the pool waits for quota

	Extra []Member // keys written by others, preserved on rewrite
}

// MarshalJSON encodes the component with sorted keys, as upstream does.
func (c *Component) MarshalJSON() ([]byte, error) {
	type kv struct {
		k string
		v []byte
	}
	var members []kv
	add := func(k string, v []byte) { members = append(members, kv{k, v}) }
	add("hostname", pyjson.AppendString(nil, c.Hostname))
	add("kind", pyjson.AppendString(nil, c.Kind))
	add("model_api", []byte(fmt.Sprint(c.ModelAPI)))
	add("state", pyjson.AppendString(nil, c.State))
	if c.Release == "" {
		add("version", []byte("null"))
	} else {
		add("version", pyjson.AppendString(nil, c.Release))
	}
	if c.Kind == KindPool {
		add("id", pyjson.AppendString(nil, c.ID))
		add("provider_name", pyjson.AppendString(nil, c.ProviderName))
		add("supported_labels", pyjson.AppendStrings(nil, c.SupportedLabels))
		add("priority", []byte(fmt.Sprint(c.Priority)))
		if c.Paused {
			add("paused", []byte("true"))
		} else {
			add("paused", []byte("false"))
		}
	}
	for _, m := range c.Extra {
		v, err := pyjson.AppendRaw(nil, m.Value)
		if err != nil || len(m.Value) == 0 {
			v = []byte("null")
		}
		add(m.Key, v)
	}
	sort.SliceStable(members, func(i, j int) bool { return members[i].k < members[j].k })
	out := []byte{'{'}
	for i, m := range members {
		if i > 0 {
			out = append(out, ", "...)
		}
		out = pyjson.AppendString(out, m.k)
		out = append(out, ": "...)
		out = append(out, m.v...)
	}
	return append(out, '}'), nil
}

// UnmarshalJSON decodes a component payload; unknown keys are kept.
func (c *Component) UnmarshalJSON(data []byte) error {
	name, version := c.Name, c.Version
	*c = Component{Name: name, Version: version, Priority: 100}
	return eachMember(data, func(key string, raw json.RawMessage) error {
		switch key {
		case "hostname":
			return str(raw, &c.Hostname)
		case "kind":
			return str(raw, &c.Kind)
		case "model_api":
			var f float64
			if err := num(raw, &f); err != nil {
				return err
			}
			c.ModelAPI = int(f)
		case "state":
			return str(raw, &c.State)
		case "version":
			if !isNull(raw) && raw[0] != '"' {
				c.Release = string(raw)
				return nil
			}
			return str(raw, &c.Release)
		case "id":
			return str(raw, &c.ID)
		case "provider_name":
			return str(raw, &c.ProviderName)
		case "supported_labels":
			return strList(raw, &c.SupportedLabels)
		case "priority":
			var f float64
			if err := num(raw, &f); err != nil {
				return err
			}
			c.Priority = int(f)
		case "paused":
			return boolean(raw, &c.Paused, false)
		default:
			c.Extra = append(c.Extra, Member{Key: key, Value: rawValue(raw)})
		}
		return nil
	})
}
