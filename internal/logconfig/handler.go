package logconfig

import (
	"bytes"
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
)

// Handler is the slog.Handler of a Config: it resolves a record's logger
// name, checks the logger's effective level and writes the record to every
// output the logger and its propagating ancestors have whose level it
// meets.
type Handler struct {
	c      *Config
	name   string
	attrs  []slog.Attr // with group prefixes applied to keys
	prefix string      // open groups, "a.b."

	once   sync.Once
	level  int
	routes []*output
}

// Enabled reports whether the logger's effective level lets l through.
func (h *Handler) Enabled(_ context.Context, l slog.Level) bool {
	h.resolve()
	return pyLevel(l) >= h.level
}

func (h *Handler) resolve() {
	h.once.Do(func() {
		h.level = h.c.effective(h.name)
		h.routes = h.c.outputsFor(h.name)
	})
}

// WithAttrs returns a handler with attrs added; a LoggerKey attribute
// renames the logger.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	n := &Handler{c: h.c, name: h.name, prefix: h.prefix, attrs: append([]slog.Attr(nil), h.attrs...)}
	for _, a := range attrs {
		if a.Key == LoggerKey && h.prefix == "" {
			n.name = a.Value.String()
			continue
		}
		a.Key = h.prefix + a.Key
		n.attrs = append(n.attrs, a)
	}
	return n
}

// WithGroup returns a handler whose later attributes' keys are prefixed
// with name and a dot.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	n := &Handler{c: h.c, name: h.name, attrs: h.attrs, prefix: h.prefix + name + "."}
	return n
}

// Handle writes the record to the logger's outputs.
func (h *Handler) Handle(_ context.Context, r slog.Record) error {
	h.resolve()
	level := pyLevel(r.Level)
	var text *record
	var firstErr error
	for _, o := range h.routes {
		if level < o.level || o.sink == nil {
			continue
		}
		var out []byte
		if o.fmt != nil && o.fmt.json {
			out = h.json(r)
		} else {
			if text == nil {
				text = h.record(r, level)
			}
			f := o.fmt
			if f == nil {
				f = plainFormatter
			}
			out = []byte(f.render(text))
		}
		if err := o.sink.write(out); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// plainFormatter is Python's formatter without a format: the message.
var plainFormatter = func() *formatter {
	f := &formatter{format: "%(message)s"}
	f.compile(nil)
	return f
}()

// record resolves r: the context attributes become the message prefix,
// the others key=value pairs after it.
func (h *Handler) record(r slog.Record, level int) *record {
	var event, request, node string
	var rest strings.Builder
	add := func(a slog.Attr) {
		a.Value = a.Value.Resolve()
		switch a.Key {
		case EventKey:
			event = a.Value.String()
			return
		case RequestKey:
			request = a.Value.String()
			return
		case NodeKey:
			node = a.Value.String()
			return
		case LoggerKey:
			return
		}
		if a.Value.Kind() == slog.KindGroup {
			for _, g := range a.Value.Group() {
				g.Key = a.Key + "." + g.Key
				if a.Key == "" {
					g.Key = g.Key[1:]
				}
				addKV(&rest, g)
			}
			return
		}
		addKV(&rest, a)
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(func(a slog.Attr) bool {
		a.Key = h.prefix + a.Key
		if h.prefix != "" && strings.TrimPrefix(a.Key, h.prefix) == LoggerKey {
			a.Key = LoggerKey + "_"
		}
		add(a)
		return true
	})
	var msg strings.Builder
	if event != "" {
		msg.WriteString("[e: " + event + "] ")
	}
	if request != "" {
		msg.WriteString("[node_request: " + request + "] ")
	}
	if node != "" {
		msg.WriteString("[node: " + node + "] ")
	}
	msg.WriteString(r.Message)
	msg.WriteString(rest.String())
	return &record{name: h.name, level: level, message: msg.String(), time: r.Time, pc: r.PC}
}

func addKV(b *strings.Builder, a slog.Attr) {
	if a.Key == "" {
		return
	}
	b.WriteByte(' ')
	b.WriteString(a.Key)
	b.WriteByte('=')
	v := a.Value.String()
	if v == "" || strings.ContainsAny(v, " \"=\t") {
		v = strconv.Quote(v)
	}
	b.WriteString(v)
}

// json renders r with slog's JSON handler, adding the logger name.
func (h *Handler) json(r slog.Record) []byte {
	var buf bytes.Buffer
	jh := slog.NewJSONHandler(&buf, &slog.HandlerOptions{
		Level: slog.Level(-100),
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.LevelKey {
				return slog.String(slog.LevelKey, levelName(pyLevel(r.Level)))
			}
			return a
		},
	})
	attrs := append([]slog.Attr{slog.String(LoggerKey, h.name)}, h.attrs...)
	nr := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	nr.AddAttrs(attrs...)
	r.Attrs(func(a slog.Attr) bool {
		a.Key = h.prefix + a.Key
		nr.AddAttrs(a)
		return true
	})
	_ = jh.Handle(context.Background(), nr)
	return buf.Bytes()
}
