package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// pyHandler writes slog records in the CLI's Python logging format:
// "%(asctime)s %(levelname)s %(name)s: %(message)s" with asctime
// "YYYY-MM-DD HH:MM:SS,mmm" in local time. The logger name comes from the
// "logger" attribute; other attributes are appended as key=value.
type pyHandler struct {
	mu    *sync.Mutex
	w     io.Writer
	level slog.Leveler
	name  string
	attrs []slog.Attr
	now   func() time.Time
}

func newPyHandler(w io.Writer, level slog.Leveler, now func() time.Time) *pyHandler {
	return &pyHandler{mu: &sync.Mutex{}, w: w, level: level, name: "nodepool", now: now}
}

func (h *pyHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

func (h *pyHandler) Handle(_ context.Context, r slog.Record) error {
	t := r.Time
	if h.now != nil {
		t = h.now()
	}
	if t.IsZero() {
		t = time.Now()
	}
	var b strings.Builder
	b.WriteString(t.Format("2006-01-02 15:04:05"))
	fmt.Fprintf(&b, ",%03d ", t.Nanosecond()/1e6)
	b.WriteString(levelName(r.Level))
	b.WriteString(" " + h.name + ": " + r.Message)
	add := func(a slog.Attr) bool {
		if a.Key != "" {
			b.WriteString(" " + a.Key + "=" + a.Value.String())
		}
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	// Multi-line messages: one log line per text line.
	lines := strings.Split(b.String(), "\n")
	header := lines[0][:strings.Index(lines[0], ": ")+2]
	var out strings.Builder
	for i, l := range lines {
		if i > 0 {
			out.WriteString(header + "  ")
		}
		out.WriteString(l + "\n")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, out.String())
	return err
}

func levelName(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "ERROR"
	case l >= slog.LevelWarn:
		return "WARNING"
	case l >= slog.LevelInfo:
		return "INFO"
	}
	return "DEBUG"
}

func (h *pyHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append([]slog.Attr(nil), h.attrs...)
	for _, a := range attrs {
		if a.Key == "logger" {
			c.name = a.Value.String()
			continue
		}
		c.attrs = append(c.attrs, a)
	}
	return &c
}

func (h *pyHandler) WithGroup(string) slog.Handler { return h }
