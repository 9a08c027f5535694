package driver

import (
	"fmt"

	"gopkg.in/yaml.v3"
)

// maxAnyNodes bounds the nodes a free-form value may expand to, aliases
// counted at every use.
const maxAnyNodes = 1_000_000

// anyDecoder converts a YAML tree to plain values in time linear in its
// size (yaml.v3's own decoder checks mappings for duplicate keys pair by
// pair). Duplicate keys are an error, merge keys (<<) are applied, and
// alias expansion is bounded.
type anyDecoder struct{ budget int }

func (d *anyDecoder) decode(n *yaml.Node, depth int) (any, error) {
	d.budget--
	if d.budget < 0 {
		return nil, fmt.Errorf("line %d: value too large (aliases expand to more than %d nodes)", n.Line, maxAnyNodes)
	}
	if depth > 1000 {
		return nil, fmt.Errorf("line %d: value nested too deeply", n.Line)
	}
	switch n.Kind {
	case yaml.AliasNode:
		if n.Alias == nil {
			return nil, fmt.Errorf("line %d: unknown alias", n.Line)
		}
		return d.decode(n.Alias, depth+1)
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := d.decode(c, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.MappingNode:
		out := make(map[string]any, len(n.Content)/2)
		own := make(map[string]bool, len(n.Content)/2)
		var merges []*yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, vn := n.Content[i], n.Content[i+1]
			if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
				merges = append(merges, vn)
				continue
			}
			kv, err := d.decode(k, depth+1)
			if err != nil {
				return nil, err
			}
			ks := fmt.Sprint(kv)
			if own[ks] {
				return nil, fmt.Errorf("line %d: mapping key %q already defined", k.Line, k.Value)
			}
			own[ks] = true
			v, err := d.decode(vn, depth+1)
			if err != nil {
				return nil, err
			}
			out[ks] = v
		}
		// Merged keys never override the mapping's own; earlier merge
		// sources win over later ones.
		for _, m := range merges {
			if m.Kind == yaml.AliasNode && m.Alias != nil {
				m = m.Alias
			}
			srcs := []*yaml.Node{m}
			if m.Kind == yaml.SequenceNode {
				srcs = m.Content
			}
			for _, src := range srcs {
				v, err := d.decode(src, depth+1)
				if err != nil {
					return nil, err
				}
				mm, ok := v.(map[string]any)
				if !ok {
					return nil, fmt.Errorf("line %d: map merge requires a map or a sequence of maps", m.Line)
				}
				for k, x := range mm {
					if _, ok := out[k]; !ok {
						out[k] = x
					}
				}
			}
		}
		return out, nil
	case yaml.ScalarNode:
		if n.Tag == "!!str" {
			return n.Value, nil
		}
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, err
		}
		return v, nil
	}
	return nil, fmt.Errorf("line %d: unexpected YAML node", n.Line)
}
