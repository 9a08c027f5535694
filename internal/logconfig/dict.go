package logconfig

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// parseDict reads the dictionary form (YAML, or JSON, which YAML reads).
func parseDict(data []byte) (*Config, error) {
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	c := &Config{loggers: map[string]*logger{}}
	if doc == nil {
		return c, errors.New("the file is empty")
	}
	if v, ok := doc["version"]; !ok || fmt.Sprint(v) != "1" {
		return c, errors.New("version: must be 1")
	}
	for _, k := range sortedKeys(doc) {
		switch k {
		case "version", "formatters", "handlers", "loggers", "root", "disable_existing_loggers":
		case "incremental":
			if b, _ := doc[k].(bool); b {
				c.warnf("incremental: true is not supported; the file is applied as a whole")
			}
		case "filters":
			c.warnf("filters are not supported and are ignored")
		default:
			c.warnf("key %q is not supported and is ignored", k)
		}
	}
	fmts := map[string]*formatter{}
	for _, name := range sortedKeys(section(doc, "formatters")) {
		m := asMap(section(doc, "formatters")[name])
		class := str(m["class"])
		if f := str(m["()"]); f != "" {
			class = f
		}
		for k := range m {
			switch k {
			case "format", "datefmt", "class", "style", "()", "validate":
			default:
				c.warnf("formatter %s: key %q is not supported and is ignored", name, k)
			}
		}
		fmts[name] = c.newFormatter(name, str(m["format"]), str(m["datefmt"]), class, str(m["style"]))
	}
	outs := map[string]*output{}
	for _, name := range sortedKeys(section(doc, "handlers")) {
		m := asMap(section(doc, "handlers")[name])
		s := handlerSpec{name: name, class: str(m["class"]), level: str(m["level"]), formatter: str(m["formatter"]),
			filename: str(m["filename"]), mode: str(m["mode"]), when: str(m["when"]), encoding: str(m["encoding"])}
		if st := str(m["stream"]); st != "" {
			s.stream = strings.TrimPrefix(strings.TrimPrefix(st, "ext://"), "sys.")
		}
		s.maxBytes = int64(num(m["maxBytes"]))
		s.backupCount = num(m["backupCount"])
		s.interval = num(m["interval"])
		s.utc, _ = m["utc"].(bool)
		for k := range m {
			switch k {
			case "class", "level", "formatter", "stream", "filename", "mode", "maxBytes", "backupCount",
				"when", "interval", "utc", "encoding", "delay":
			case "filters":
				c.warnf("handler %s: filters are not supported and are ignored", name)
			default:
				c.warnf("handler %s: key %q is not supported and is ignored", name, k)
			}
		}
		o, err := c.buildOutput(s, fmts)
		if err != nil {
			return c, err
		}
		outs[name] = o
	}
	loggers := section(doc, "loggers")
	if r, ok := doc["root"]; ok {
		loggers = copyMap(loggers)
		loggers[""] = r
	}
	for _, name := range sortedKeys(loggers) {
		m := asMap(loggers[name])
		propagate := true
		if p, ok := m["propagate"]; ok {
			propagate = truthy(p)
		}
		for k := range m {
			switch k {
			case "level", "handlers", "propagate":
			case "filters":
				c.warnf("logger %s: filters are not supported and are ignored", displayName(name))
			default:
				c.warnf("logger %s: key %q is not supported and is ignored", displayName(name), k)
			}
		}
		var hs []string
		for _, h := range asList(m["handlers"]) {
			hs = append(hs, str(h))
		}
		if err := c.setLogger(name, str(m["level"]), hs, propagate, outs); err != nil {
			return c, err
		}
	}
	return c, nil
}

func section(doc map[string]any, key string) map[string]any { return asMap(doc[key]) }

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	if m == nil {
		return map[string]any{}
	}
	return m
}

func copyMap(m map[string]any) map[string]any {
	n := make(map[string]any, len(m)+1)
	for k, v := range m {
		n[k] = v
	}
	return n
}

func asList(v any) []any {
	switch l := v.(type) {
	case []any:
		return l
	case string:
		var out []any
		for _, s := range strings.Split(l, ",") {
			out = append(out, strings.TrimSpace(s))
		}
		return out
	}
	return nil
}

func str(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

func num(v any) int {
	switch n := v.(type) {
	case int:
		return n
	case float64:
		return int(n)
	case string:
		i, _ := strconv.Atoi(n)
		return i
	}
	return 0
}

func truthy(v any) bool {
	switch b := v.(type) {
	case bool:
		return b
	case int:
		return b != 0
	case string:
		switch strings.ToLower(b) {
		case "1", "true", "yes", "on":
			return true
		}
	}
	return false
}
