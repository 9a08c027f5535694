package logconfig

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// record is what a formatter renders: a slog record resolved to Python's
// record fields.
type record struct {
	name    string
	level   int
	message string // with the context prefix and key=value attributes
	time    time.Time
	pc      uintptr
}

// formatter renders records with a %-style format string.
type formatter struct {
	format    string
	datefmt   string
	multiLine bool
	json      bool

	parts []part
}

// part is a literal or a %(field) conversion of a format string.
type part struct {
	lit   string
	field string
	spec  string // printf flags, width and precision
	verb  byte
}

var fieldRE = regexp.MustCompile(`%\(([^)]*)\)([#0\- +]*\d*(?:\.\d+)?)([diouxXeEfFgGcrsa%])`)

// knownFields are the record fields a format string may name.
var knownFields = map[string]bool{
	"name": true, "levelname": true, "levelno": true, "message": true, "asctime": true,
	"created": true, "msecs": true, "relativeCreated": true, "process": true,
	"processName": true, "thread": true, "threadName": true, "module": true,
	"filename": true, "pathname": true, "funcName": true, "lineno": true,
	"taskName": true,
}

var start = time.Now()

// compile splits the format string; unknown fields are reported to c (when
// given) and render empty.
func (f *formatter) compile(c *Config) {
	s := f.format
	for len(s) > 0 {
		loc := fieldRE.FindStringSubmatchIndex(s)
		if loc == nil {
			f.parts = append(f.parts, part{lit: strings.ReplaceAll(s, "%%", "%")})
			break
		}
		if loc[0] > 0 {
			f.parts = append(f.parts, part{lit: strings.ReplaceAll(s[:loc[0]], "%%", "%")})
		}
		p := part{field: s[loc[2]:loc[3]], spec: s[loc[4]:loc[5]], verb: s[loc[6]]}
		if !knownFields[p.field] && c != nil {
			c.warnf("format field %%(%s) is not supported; it is left empty", p.field)
		}
		f.parts = append(f.parts, p)
		s = s[loc[1]:]
	}
}

// render formats r as one or more lines, each ending in a newline.
func (f *formatter) render(r *record) string {
	first, _, multi := strings.Cut(r.message, "\n")
	if !multi || !f.multiLine {
		return f.line(r, r.message) + "\n"
	}
	var b strings.Builder
	b.WriteString(f.line(r, first) + "\n")
	for _, l := range strings.Split(r.message, "\n")[1:] {
		b.WriteString(f.line(r, "  "+l) + "\n")
	}
	return b.String()
}

func (f *formatter) line(r *record, msg string) string {
	var b strings.Builder
	var frame *runtime.Frame
	for _, p := range f.parts {
		if p.field == "" {
			b.WriteString(p.lit)
			continue
		}
		var v any
		switch p.field {
		case "name":
			v = r.name
		case "levelname":
			v = levelName(r.level)
		case "levelno":
			v = r.level
		case "message":
			v = msg
		case "asctime":
			v = f.asctime(r.time)
		case "created":
			v = float64(r.time.UnixNano()) / 1e9
		case "msecs":
			v = float64(r.time.Nanosecond()/1e6) + 0.0
		case "relativeCreated":
			v = float64(r.time.Sub(start).Microseconds()) / 1e3
		case "process":
			v = os.Getpid()
		case "processName":
			v = "MainProcess"
		case "thread":
			v = 0
		case "threadName", "taskName":
			v = "MainThread"
		case "module", "filename", "pathname", "funcName", "lineno":
			if frame == nil {
				fr, _ := runtime.CallersFrames([]uintptr{r.pc}).Next()
				frame = &fr
			}
			switch p.field {
			case "pathname":
				v = frame.File
			case "filename":
				v = filepath.Base(frame.File)
			case "module":
				v = strings.TrimSuffix(filepath.Base(frame.File), ".go")
			case "funcName":
				v = frame.Function
				if i := strings.LastIndexByte(frame.Function, '.'); i >= 0 {
					v = frame.Function[i+1:]
				}
			case "lineno":
				v = frame.Line
			}
		default:
			v = ""
		}
		b.WriteString(convert(p, v))
	}
	return b.String()
}

// convert applies a %-conversion to v.
func convert(p part, v any) string {
	switch p.verb {
	case 's', 'r', 'a':
		return fmt.Sprintf("%"+p.spec+"s", fmt.Sprint(v))
	case 'd', 'i', 'u':
		switch n := v.(type) {
		case int:
			return fmt.Sprintf("%"+p.spec+"d", n)
		case float64:
			return fmt.Sprintf("%"+p.spec+"d", int64(n))
		}
	case 'f', 'F', 'e', 'E', 'g', 'G':
		switch n := v.(type) {
		case int:
			return fmt.Sprintf("%"+p.spec+string(p.verb), float64(n))
		case float64:
			return fmt.Sprintf("%"+p.spec+string(p.verb), n)
		}
	case 'x', 'X', 'o':
		if n, ok := v.(int); ok {
			return fmt.Sprintf("%"+p.spec+string(p.verb), n)
		}
	}
	return fmt.Sprint(v)
}

// asctime formats t as Python's Formatter does: the default
// "YYYY-MM-DD HH:MM:SS,mmm", or datefmt through strftime.
func (f *formatter) asctime(t time.Time) string {
	if f.datefmt == "" {
		return t.Format("2006-01-02 15:04:05") + "," + fmt.Sprintf("%03d", t.Nanosecond()/1e6)
	}
	return strftime(f.datefmt, t)
}

// strftime implements the C strftime directives Python's time.strftime
// passes through (the common ones).
func strftime(layout string, t time.Time) string {
	var b strings.Builder
	for i := 0; i < len(layout); i++ {
		c := layout[i]
		if c != '%' || i+1 == len(layout) {
			b.WriteByte(c)
			continue
		}
		i++
		switch layout[i] {
		case 'Y':
			b.WriteString(strconv.Itoa(t.Year()))
		case 'y':
			fmt.Fprintf(&b, "%02d", t.Year()%100)
		case 'm':
			fmt.Fprintf(&b, "%02d", int(t.Month()))
		case 'd':
			fmt.Fprintf(&b, "%02d", t.Day())
		case 'H':
			fmt.Fprintf(&b, "%02d", t.Hour())
		case 'I':
			h := t.Hour() % 12
			if h == 0 {
				h = 12
			}
			fmt.Fprintf(&b, "%02d", h)
		case 'M':
			fmt.Fprintf(&b, "%02d", t.Minute())
		case 'S':
			fmt.Fprintf(&b, "%02d", t.Second())
		case 'f':
			fmt.Fprintf(&b, "%06d", t.Nanosecond()/1000)
		case 'p':
			b.WriteString(t.Format("PM"))
		case 'b', 'h':
			b.WriteString(t.Format("Jan"))
		case 'B':
			b.WriteString(t.Format("January"))
		case 'a':
			b.WriteString(t.Format("Mon"))
		case 'A':
			b.WriteString(t.Format("Monday"))
		case 'j':
			fmt.Fprintf(&b, "%03d", t.YearDay())
		case 'z':
			b.WriteString(t.Format("-0700"))
		case 'Z':
			b.WriteString(t.Format("MST"))
		case 's':
			b.WriteString(strconv.FormatInt(t.Unix(), 10))
		case 'F':
			b.WriteString(t.Format("2006-01-02"))
		case 'T':
			b.WriteString(t.Format("15:04:05"))
		case '%':
			b.WriteByte('%')
		default:
			b.WriteByte('%')
			b.WriteByte(layout[i])
		}
	}
	return b.String()
}
