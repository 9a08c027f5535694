package logconfig

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// handlerSpec is a Python handler's definition, whichever file form it
// came from.
type handlerSpec struct {
	name        string
	class       string
	level       string
	formatter   string
	stream      string // "stdout" or "stderr"
	filename    string
	mode        string
	maxBytes    int64
	backupCount int
	when        string
	interval    int
	utc         bool
	encoding    string
}

// shortClass strips the module of a handler or formatter class name.
func shortClass(class string) string {
	class = strings.TrimPrefix(class, "logging.handlers.")
	class = strings.TrimPrefix(class, "handlers.")
	return strings.TrimPrefix(class, "logging.")
}

// buildOutput opens the output a handler spec describes; an unsupported
// one is named in the warnings and discarded.
func (c *Config) buildOutput(s handlerSpec, fmts map[string]*formatter) (*output, error) {
	o := &output{name: s.name}
	if s.level != "" {
		l, err := ParseLevel(s.level)
		if err != nil {
			return nil, fmt.Errorf("handler %s: %w", s.name, err)
		}
		o.level = l
	}
	if s.formatter != "" {
		f, ok := fmts[s.formatter]
		if !ok {
			return nil, fmt.Errorf("handler %s: unknown formatter %q", s.name, s.formatter)
		}
		o.fmt = f
	}
	if s.encoding != "" && !strings.EqualFold(strings.ReplaceAll(s.encoding, "-", ""), "utf8") {
		c.warnf("handler %s: encoding %q is not supported; writing UTF-8", s.name, s.encoding)
	}
	flag := os.O_APPEND
	if strings.HasPrefix(s.mode, "w") {
		flag = os.O_TRUNC
	}
	file := func(fs *fileSink) (*output, error) {
		if s.filename == "" {
			return nil, fmt.Errorf("handler %s: %s needs a filename", s.name, s.class)
		}
		fs.path, fs.mode = s.filename, flag
		if err := fs.start(); err != nil {
			return nil, fmt.Errorf("handler %s: %w", s.name, err)
		}
		o.sink = fs
		c.outputs = append(c.outputs, o)
		return o, nil
	}
	switch shortClass(s.class) {
	case "StreamHandler":
		w := os.Stderr
		switch s.stream {
		case "", "stderr":
		case "stdout":
			w = os.Stdout
		default:
			c.warnf("handler %s: stream %q is not supported; writing to standard error", s.name, s.stream)
		}
		o.sink = newStreamSink(w)
		c.outputs = append(c.outputs, o)
		return o, nil
	case "FileHandler":
		return file(&fileSink{})
	case "WatchedFileHandler":
		return file(&fileSink{watch: true})
	case "RotatingFileHandler":
		return file(&fileSink{maxLen: s.maxBytes, backup: s.backupCount})
	case "TimedRotatingFileHandler":
		fs := &fileSink{backup: s.backupCount, utc: s.utc}
		n := s.interval
		if n <= 0 {
			n = 1
		}
		switch w := strings.ToUpper(s.when); {
		case w == "" || w == "H":
			fs.every = time.Duration(n) * time.Hour
		case w == "S":
			fs.every = time.Duration(n) * time.Second
		case w == "M":
			fs.every = time.Duration(n) * time.Minute
		case w == "D":
			fs.every = time.Duration(n) * 24 * time.Hour
		case w == "MIDNIGHT":
			fs.every, fs.midnt = 24*time.Hour, true
		default:
			c.warnf("handler %s: rotation %q is not supported; rotating daily", s.name, s.when)
			fs.every = 24 * time.Hour
		}
		return file(fs)
	case "NullHandler":
		return o, nil
	}
	c.warnf("handler %s: class %s is not supported; its records are discarded", s.name, s.class)
	return o, nil
}

// newFormatter builds a formatter; class and style it cannot honour are
// warned about.
func (c *Config) newFormatter(name, format, datefmt, class, style string) *formatter {
	f := &formatter{format: format, datefmt: datefmt}
	if f.format == "" {
		f.format = "%(message)s"
	}
	switch cl := strings.ToLower(class); {
	case cl == "" || cl == "logging.formatter":
	case strings.HasSuffix(cl, "multilineformatter"):
		f.multiLine = true
	case cl == "json" || strings.HasSuffix(cl, "jsonformatter"):
		f.json = true
	default:
		c.warnf("formatter %s: class %s is not supported; using the plain formatter", name, class)
	}
	if style != "" && style != "%" {
		c.warnf("formatter %s: style %q is not supported; only %%-style formats are", name, style)
	}
	f.compile(c)
	return f
}

// setLogger defines a logger from its level, handler names and propagate
// flag.
func (c *Config) setLogger(name, level string, handlers []string, propagate bool, outs map[string]*output) error {
	l := &logger{propagate: propagate}
	if level != "" {
		n, err := ParseLevel(level)
		if err != nil {
			return fmt.Errorf("logger %s: %w", displayName(name), err)
		}
		l.level = n
	}
	for _, h := range handlers {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		o, ok := outs[h]
		if !ok {
			return fmt.Errorf("logger %s: unknown handler %q", displayName(name), h)
		}
		l.outputs = append(l.outputs, o)
	}
	c.loggers[name] = l
	return nil
}

func displayName(name string) string {
	if name == "" {
		return "root"
	}
	return name
}

// globQuote lists the files whose path starts with prefix, sorted.
func globQuote(prefix string) ([]string, error) {
	dir, base := filepath.Split(prefix)
	if dir == "" {
		dir = "."
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), base) {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(out)
	return out, nil
}
