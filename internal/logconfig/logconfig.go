// Package logconfig gives the daemons Python-logging-compatible output
// behind log/slog: named loggers in a dotted hierarchy with levels and
// handlers, the "%(asctime)s %(levelname)s %(name)s: %(message)s" line
// format, and logging configuration files in the two forms operators
// already have: the YAML/JSON dictionary form and the INI file form.
//
// Code logs through *slog.Logger. A logger's name is the value of the
// LoggerKey attribute given to With (the last one wins); a record without
// one is logged under DefaultName. The attributes EventKey, RequestKey and
// NodeKey are written into the message as "[e: …] [node_request: …]
// [node: …]" prefixes; other attributes follow the message as key=value.
//
// What a configuration file asks for and this package cannot honour
// (filters, custom classes, unsupported handler classes, format fields it
// does not know) is listed in Config.Warnings, which the daemons log at
// start; it is never dropped silently.
package logconfig

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Attribute keys with a meaning to the handler.
const (
	// LoggerKey names the logger a record belongs to.
	LoggerKey = "logger"
	// EventKey is the Zuul event id of a record's request.
	EventKey = "event"
	// RequestKey is the node request id.
	RequestKey = "request"
	// NodeKey is the node id.
	NodeKey = "node"
)

// DefaultName is the logger name of records logged without LoggerKey.
const DefaultName = "nodepool"

// DefaultFormat is the line format of the daemons' default configuration.
const DefaultFormat = "%(asctime)s %(levelname)s %(name)s: %(message)s"

// Python logging levels.
const (
	NotSet   = 0
	Debug    = 10
	Info     = 20
	Warning  = 30
	Error    = 40
	Critical = 50
)

// Config is a loaded logging configuration: loggers by name ("" is the
// root logger) and the outputs they write to.
type Config struct {
	loggers map[string]*logger
	outputs []*output
	// Warnings names everything of the configuration that is not honoured.
	Warnings []string
}

type logger struct {
	level     int // NotSet: inherit
	outputs   []*output
	propagate bool
}

// output is a Python handler: a level threshold, a formatter and a sink.
type output struct {
	name  string
	level int
	fmt   *formatter
	sink  sink // nil: discard (NullHandler)
}

// sink writes whole formatted records.
type sink interface {
	write(p []byte) error
	close() error
}

func (c *Config) warnf(format string, args ...any) {
	c.Warnings = append(c.Warnings, fmt.Sprintf(format, args...))
}

// Options of the default configuration.
type Options struct {
	// Debug lowers the nodepool logger and the console to DEBUG (-d).
	Debug bool
	// JSON writes one JSON object per record instead of formatted lines.
	JSON bool
	// Stream is where the console writes (default os.Stdout).
	Stream io.Writer
}

// Default returns the daemons' configuration without -l: the nodepool
// logger at INFO (DEBUG with Options.Debug) and the kazoo, openstack and
// requests loggers at WARNING, all to a console handler on standard output
// with DefaultFormat (multi-line messages continue with indented lines);
// everything else is discarded.
func Default(o Options) *Config {
	level := Info
	if o.Debug {
		level = Debug
	}
	w := o.Stream
	if w == nil {
		w = os.Stdout
	}
	f := &formatter{format: DefaultFormat, multiLine: true, json: o.JSON}
	f.compile(nil)
	console := &output{name: "console", level: level, fmt: f, sink: newStreamSink(w)}
	c := &Config{loggers: map[string]*logger{
		"":          {level: Warning},
		"nodepool":  {level: level, outputs: []*output{console}, propagate: true},
		"kazoo":     {level: Warning, outputs: []*output{console}, propagate: true},
		"openstack": {level: Warning, outputs: []*output{console}, propagate: true},
		"requests":  {level: Warning, outputs: []*output{console}, propagate: true},
	}, outputs: []*output{console}}
	return c
}

// Load reads a logging configuration file: the dictionary form when its
// name ends in .yaml, .yml or .json, the INI form otherwise. json makes
// every output write JSON records whatever its formatter says.
func Load(path string, json bool) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("Unable to read logging config file at %s", path)
	}
	var c *Config
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml", ".json":
		c, err = parseDict(data)
	default:
		c, err = parseINI(data)
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("logging config %s: %w", path, err)
	}
	if json {
		for _, o := range c.outputs {
			if o.fmt != nil {
				o.fmt.json = true
			}
		}
	}
	return c, nil
}

// Close closes the files the configuration opened.
func (c *Config) Close() {
	if c == nil {
		return
	}
	for _, o := range c.outputs {
		if o.sink != nil {
			_ = o.sink.close()
		}
	}
}

// Handler returns a slog handler that routes records through the
// configuration's loggers.
func (c *Config) Handler() slog.Handler {
	return &Handler{c: c, name: DefaultName}
}

// effective returns the level of the named logger or its nearest ancestor
// that has one (the root's default is WARNING).
func (c *Config) effective(name string) int {
	for n := name; ; n = parent(n) {
		if l, ok := c.loggers[n]; ok && l.level != NotSet {
			return l.level
		}
		if n == "" {
			return Warning
		}
	}
}

// outputsFor returns the outputs a record of the named logger reaches:
// those of the logger and its ancestors, up to one that does not propagate.
func (c *Config) outputsFor(name string) []*output {
	var outs []*output
	for n := name; ; n = parent(n) {
		if l, ok := c.loggers[n]; ok {
			outs = append(outs, l.outputs...)
			if !l.propagate {
				return outs
			}
		}
		if n == "" {
			return outs
		}
	}
}

// parent returns the dotted parent of a logger name; the root's is "".
func parent(name string) string {
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		return name[:i]
	}
	return ""
}

// ParseLevel reads a Python level: a name (DEBUG, INFO, WARN, WARNING,
// ERROR, CRITICAL, FATAL, NOTSET) or a number.
func ParseLevel(s string) (int, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "NOTSET":
		return NotSet, nil
	case "DEBUG":
		return Debug, nil
	case "INFO":
		return Info, nil
	case "WARN", "WARNING":
		return Warning, nil
	case "ERROR":
		return Error, nil
	case "CRITICAL", "FATAL":
		return Critical, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("unknown level %q", s)
	}
	return n, nil
}

// pyLevel maps a slog level to Python's scale (Debug -4 → 10, Info 0 →
// 20, Warn 4 → 30, Error 8 → 40, 12 → 50).
func pyLevel(l slog.Level) int { return Info + int(l)*10/4 }

// levelName is Python's name of a level.
func levelName(py int) string {
	switch {
	case py >= Critical:
		return "CRITICAL"
	case py >= Error:
		return "ERROR"
	case py >= Warning:
		return "WARNING"
	case py >= Info:
		return "INFO"
	case py >= Debug:
		return "DEBUG"
	}
	return "NOTSET"
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
