package logconfig

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// iniFile is a parsed INI file: sections of lower-cased keys.
type iniFile map[string]map[string]string

func readINI(data []byte) (iniFile, error) {
	f := iniFile{}
	var cur map[string]string
	var lastKey string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || trimmed[0] == '#' || trimmed[0] == ';' {
			lastKey = ""
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if cur != nil && lastKey != "" {
				cur[lastKey] += "\n" + trimmed
				continue
			}
			return nil, fmt.Errorf("line %d: continuation line without a key", n)
		}
		if trimmed[0] == '[' {
			end := strings.IndexByte(trimmed, ']')
			if end < 0 {
				return nil, fmt.Errorf("line %d: unterminated section header", n)
			}
			name := trimmed[1:end]
			if _, dup := f[name]; dup {
				return nil, fmt.Errorf("line %d: section [%s] appears twice", n, name)
			}
			cur = map[string]string{}
			f[name] = cur
			lastKey = ""
			continue
		}
		if cur == nil {
			return nil, fmt.Errorf("line %d: key outside of any section", n)
		}
		i := strings.IndexAny(trimmed, "=:")
		if i < 0 {
			return nil, fmt.Errorf("line %d: expected key = value", n)
		}
		lastKey = strings.ToLower(strings.TrimSpace(trimmed[:i]))
		cur[lastKey] = strings.TrimSpace(trimmed[i+1:])
	}
	return f, sc.Err()
}

var interpRE = regexp.MustCompile(`%\(([^)]+)\)s|%%`)

// get returns a section's value with %(key)s references to the section's
// (or DEFAULT's) keys expanded and %% turned into %.
func (f iniFile) get(section, key string) string {
	v, ok := f[section][key]
	if !ok {
		v = f["DEFAULT"][key]
	}
	return interpRE.ReplaceAllStringFunc(v, func(m string) string {
		if m == "%%" {
			return "%"
		}
		ref := strings.ToLower(m[2 : len(m)-2])
		if r, ok := f[section][ref]; ok {
			return r
		}
		return f["DEFAULT"][ref]
	})
}

// raw returns a value without interpolation.
func (f iniFile) raw(section, key string) string {
	if v, ok := f[section][key]; ok {
		return v
	}
	return f["DEFAULT"][key]
}

func keys(s string) []string {
	var out []string
	for _, k := range strings.Split(s, ",") {
		if k = strings.TrimSpace(k); k != "" {
			out = append(out, k)
		}
	}
	return out
}

// parseINI reads the INI file form.
func parseINI(data []byte) (*Config, error) {
	c := &Config{loggers: map[string]*logger{}}
	f, err := readINI(data)
	if err != nil {
		return c, err
	}
	fmts := map[string]*formatter{}
	for _, name := range keys(f.get("formatters", "keys")) {
		sec := "formatter_" + name
		if _, ok := f[sec]; !ok {
			return c, fmt.Errorf("section [%s] is missing", sec)
		}
		fmts[name] = c.newFormatter(name, f.raw(sec, "format"), f.raw(sec, "datefmt"), f.raw(sec, "class"), f.raw(sec, "style"))
	}
	outs := map[string]*output{}
	for _, name := range keys(f.get("handlers", "keys")) {
		sec := "handler_" + name
		if _, ok := f[sec]; !ok {
			return c, fmt.Errorf("section [%s] is missing", sec)
		}
		s := handlerSpec{name: name, class: f.get(sec, "class"), level: f.get(sec, "level"), formatter: f.get(sec, "formatter")}
		if err := c.handlerArgs(&s, f.get(sec, "args"), f.get(sec, "kwargs")); err != nil {
			return c, fmt.Errorf("handler %s: %w", name, err)
		}
		o, err := c.buildOutput(s, fmts)
		if err != nil {
			return c, err
		}
		outs[name] = o
	}
	names := keys(f.get("loggers", "keys"))
	hasRoot := false
	for _, n := range names {
		hasRoot = hasRoot || n == "root"
	}
	if !hasRoot {
		return c, errors.New("[loggers] keys must include root")
	}
	for _, name := range names {
		sec := "logger_" + name
		if _, ok := f[sec]; !ok {
			return c, fmt.Errorf("section [%s] is missing", sec)
		}
		qual, propagate := "", true
		if name != "root" {
			qual = f.get(sec, "qualname")
			if qual == "" {
				return c, fmt.Errorf("section [%s] has no qualname", sec)
			}
			if p := f.get(sec, "propagate"); p != "" {
				n, err := strconv.Atoi(p)
				if err != nil {
					return c, fmt.Errorf("section [%s]: propagate: %q is not a number", sec, p)
				}
				propagate = n != 0
			}
		}
		if err := c.setLogger(qual, f.get(sec, "level"), keys(f.get(sec, "handlers")), propagate, outs); err != nil {
			return c, err
		}
	}
	return c, nil
}

// handlerArgs fills a spec from the constructor arguments of an INI
// handler section (a Python tuple and dict literal).
func (c *Config) handlerArgs(s *handlerSpec, args, kwargs string) error {
	pos, err := parseLiteral(args, '(', ')')
	if err != nil {
		return fmt.Errorf("args: %w", err)
	}
	named := map[string]any{}
	if strings.TrimSpace(kwargs) != "" {
		kv, err := parseLiteral(kwargs, '{', '}')
		if err != nil {
			return fmt.Errorf("kwargs: %w", err)
		}
		for i := 0; i+1 < len(kv); i += 2 {
			named[str(kv[i])] = kv[i+1]
		}
	}
	var params []string
	switch shortClass(s.class) {
	case "StreamHandler":
		params = []string{"stream"}
	case "FileHandler", "WatchedFileHandler":
		params = []string{"filename", "mode", "encoding", "delay"}
	case "RotatingFileHandler":
		params = []string{"filename", "mode", "maxBytes", "backupCount", "encoding", "delay"}
	case "TimedRotatingFileHandler":
		params = []string{"filename", "when", "interval", "backupCount", "encoding", "delay", "utc"}
	}
	for i, v := range pos {
		if i < len(params) {
			named[params[i]] = v
		}
	}
	for _, k := range sortedKeys(named) {
		v := named[k]
		switch k {
		case "stream", "strm":
			s.stream = strings.TrimPrefix(str(v), "sys.")
		case "filename":
			s.filename = str(v)
		case "mode":
			s.mode = str(v)
		case "encoding":
			if v != nil {
				s.encoding = str(v)
			}
		case "maxBytes":
			s.maxBytes = int64(num(v))
		case "backupCount":
			s.backupCount = num(v)
		case "when":
			s.when = str(v)
		case "interval":
			s.interval = num(v)
		case "utc":
			s.utc = truthy(v)
		case "delay", "errors":
		default:
			c.warnf("handler %s: argument %s is not supported and is ignored", s.name, k)
		}
	}
	return nil
}

// parseLiteral reads a Python tuple (or dict, as alternating keys and
// values) of strings, numbers (with * products), True/False/None and names
// such as sys.stdout.
func parseLiteral(s string, open, close byte) ([]any, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	if s[0] != open || s[len(s)-1] != close {
		return nil, fmt.Errorf("%q is not a %c…%c literal", s, open, close)
	}
	s = s[1 : len(s)-1]
	var out []any
	for i := 0; ; {
		for i < len(s) && strings.ContainsRune(" \t\n", rune(s[i])) {
			i++
		}
		if i >= len(s) {
			return out, nil
		}
		v, n, err := literalValue(s[i:])
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		i += n
		for i < len(s) && strings.ContainsRune(" \t\n", rune(s[i])) {
			i++
		}
		if i < len(s) && (s[i] == ',' || s[i] == ':') {
			i++
		} else if i < len(s) {
			return nil, fmt.Errorf("unexpected %q", s[i:])
		}
	}
}

var numRE = regexp.MustCompile(`^-?\d+(\.\d+)?(\s*\*\s*\d+)*`)
var nameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]*`)

func literalValue(s string) (any, int, error) {
	switch s[0] {
	case '\'', '"':
		q := s[0]
		var b strings.Builder
		for i := 1; i < len(s); i++ {
			switch s[i] {
			case '\\':
				if i+1 < len(s) {
					i++
					switch s[i] {
					case 'n':
						b.WriteByte('\n')
					case 't':
						b.WriteByte('\t')
					default:
						b.WriteByte(s[i])
					}
				}
			case q:
				return b.String(), i + 1, nil
			default:
				b.WriteByte(s[i])
			}
		}
		return nil, 0, fmt.Errorf("unterminated string %s", s)
	}
	if m := numRE.FindString(s); m != "" {
		if strings.Contains(m, ".") && !strings.Contains(m, "*") {
			f, err := strconv.ParseFloat(m, 64)
			return f, len(m), err
		}
		prod := 1
		for _, f := range strings.Split(m, "*") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil {
				return nil, 0, fmt.Errorf("unsupported number %q", m)
			}
			prod *= n
		}
		return prod, len(m), nil
	}
	if m := nameRE.FindString(s); m != "" {
		switch m {
		case "True":
			return true, len(m), nil
		case "False":
			return false, len(m), nil
		case "None":
			return nil, len(m), nil
		}
		return m, len(m), nil
	}
	return nil, 0, fmt.Errorf("unsupported value %q", s)
}
