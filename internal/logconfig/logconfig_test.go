package logconfig

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func write(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

var lineRE = regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) [^ ]+: `)

func TestDefaultFormatNamesAndContext(t *testing.T) {
	var buf bytes.Buffer
	c := Default(Options{Stream: &buf})
	log := slog.New(c.Handler())
	pw := log.With(LoggerKey, "nodepool.PoolWorker.cloud-main")
	pw.Info("Assigning", RequestKey, "200-0000000001", EventKey, "abc", "count", 2)
	pw.Debug("hidden at INFO")
	log.With(LoggerKey, "kazoo.client").Info("hidden below WARNING")
	log.With(LoggerKey, "nodepool.NodePool").Warn("two\nlines", NodeKey, "0000000007")
	out := buf.String()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d lines:\n%s", len(lines), out)
	}
	for _, l := range lines {
		if !lineRE.MatchString(l) {
			t.Errorf("line not in upstream's format: %q", l)
		}
	}
	if !strings.HasSuffix(lines[0], " INFO nodepool.PoolWorker.cloud-main: [e: abc] [node_request: 200-0000000001] Assigning count=2") {
		t.Errorf("line 1: %q", lines[0])
	}
	if !strings.HasSuffix(lines[1], " WARNING nodepool.NodePool: [node: 0000000007] two") ||
		!strings.HasSuffix(lines[2], " WARNING nodepool.NodePool:   lines") {
		t.Errorf("multi-line record: %q", lines[1:])
	}
	if len(c.Warnings) != 0 {
		t.Errorf("default config warnings: %v", c.Warnings)
	}
}

func TestDefaultDebugAndJSON(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(Default(Options{Stream: &buf, Debug: true, JSON: true}).Handler())
	log.With(LoggerKey, "nodepool.builder.BuildWorker.0").Debug("building", "image", "ubuntu")
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("not JSON: %q: %v", buf.String(), err)
	}
	if rec["logger"] != "nodepool.builder.BuildWorker.0" || rec["level"] != "DEBUG" || rec["msg"] != "building" || rec["image"] != "ubuntu" {
		t.Errorf("record %v", rec)
	}
}

// upstreamINI is the shape of upstream's sample INI logging file, with a
// watched log file added.
const upstreamINI = `[formatters]
keys=simple

[loggers]
keys=root,nodepool,kazoo

[handlers]
keys=console,file

[logger_root]
level=WARNING
handlers=console

[logger_nodepool]
level=DEBUG
handlers=console,file
qualname=nodepool
propagate=0

[logger_kazoo]
level=ERROR
handlers=console
qualname=kazoo
propagate=0

[handler_console]
level=INFO
class=StreamHandler
formatter=simple
args=(sys.stdout,)

[handler_file]
level=DEBUG
class=logging.handlers.WatchedFileHandler
formatter=simple
args=('%(dir)s/launcher.log',)
dir=DIR

[formatter_simple]
format=%(asctime)s %(levelname)s %(name)s: %(message)s
datefmt=
`

func TestINIFileConfig(t *testing.T) {
	dir := t.TempDir()
	p := write(t, "logging.conf", strings.ReplaceAll(upstreamINI, "DIR", dir))
	c, err := Load(p, false)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if len(c.Warnings) != 0 {
		t.Errorf("warnings: %v", c.Warnings)
	}
	log := slog.New(c.Handler())
	log.With(LoggerKey, "nodepool.NodePool").Debug("debug line")
	log.With(LoggerKey, "kazoo.client").Warn("kazoo warning is below ERROR")
	logFile := filepath.Join(dir, "launcher.log")
	data, _ := os.ReadFile(logFile)
	if !lineRE.Match(data) || !strings.Contains(string(data), "DEBUG nodepool.NodePool: debug line\n") || strings.Contains(string(data), "kazoo") {
		t.Errorf("log file: %q", data)
	}
	// logrotate moves the file away: the next record goes to a new file.
	if err := os.Rename(logFile, logFile+".1"); err != nil {
		t.Fatal(err)
	}
	log.With(LoggerKey, "nodepool.NodePool").Info("after rotation")
	data, _ = os.ReadFile(logFile)
	if !strings.Contains(string(data), "after rotation") || strings.Contains(string(data), "debug line") {
		t.Errorf("reopened file: %q", data)
	}
}

func TestDictConfigLevelsRotationAndWarnings(t *testing.T) {
	dir := t.TempDir()
	p := write(t, "logging.yaml", `version: 1
formatters:
  simple:
    format: '%(levelname)-8s %(name)s [%(process)d] %(message)s'
  js:
    class: pythonjsonlogger.jsonlogger.JsonFormatter
filters:
  f: {}
handlers:
  file:
    class: logging.handlers.RotatingFileHandler
    filename: `+dir+`/np.log
    maxBytes: 200
    backupCount: 2
    formatter: simple
  json:
    class: logging.FileHandler
    filename: `+dir+`/np.json
    formatter: js
  syslog:
    class: logging.handlers.SysLogHandler
loggers:
  nodepool:
    level: INFO
    handlers: [file, json, syslog]
  nodepool.builder:
    level: DEBUG
root:
  level: ERROR
`)
	c, err := Load(p, false)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	warned := strings.Join(c.Warnings, "\n")
	for _, want := range []string{"filters", "SysLogHandler"} {
		if !strings.Contains(warned, want) {
			t.Errorf("no warning about %s in %q", want, warned)
		}
	}
	log := slog.New(c.Handler())
	b := log.With(LoggerKey, "nodepool.builder.UploadWorker.1")
	b.Debug("child logger level applies")
	log.With(LoggerKey, "nodepool.NodePool").Debug("parent level hides this")
	for range 10 {
		b.Info("filling the file past maxBytes")
	}
	data, _ := os.ReadFile(filepath.Join(dir, "np.log"))
	if strings.Contains(string(data), "parent level hides") {
		t.Errorf("DEBUG record of an INFO logger written: %q", data)
	}
	if _, err := os.Stat(filepath.Join(dir, "np.log.1")); err != nil {
		t.Errorf("no rotation: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "np.log.3")); err == nil {
		t.Errorf("more backups than backupCount")
	}
	if !regexp.MustCompile(`^(DEBUG|INFO) +nodepool\.builder\.UploadWorker\.1 \[\d+\] `).Match(data) {
		t.Errorf("format with width and %%(process)d: %q", data)
	}
	js, _ := os.ReadFile(filepath.Join(dir, "np.json"))
	first, _, _ := strings.Cut(string(js), "\n")
	var rec map[string]any
	if err := json.Unmarshal([]byte(first), &rec); err != nil || rec["logger"] != "nodepool.builder.UploadWorker.1" {
		t.Errorf("JSON formatter output %q: %v", first, err)
	}
}

func TestBadFilesAreErrors(t *testing.T) {
	for name, text := range map[string]string{
		"noroot.conf":    "[loggers]\nkeys=nodepool\n[handlers]\nkeys=\n[formatters]\nkeys=\n[logger_nodepool]\nqualname=nodepool\n",
		"badlevel.yaml":  "version: 1\nroot: {level: LOUD}\n",
		"nohandler.yaml": "version: 1\nloggers: {nodepool: {handlers: [missing]}}\n",
		"noversion.json": `{"root": {"level": "INFO"}}`,
		"badargs.conf":   "[loggers]\nkeys=root\n[handlers]\nkeys=h\n[formatters]\nkeys=\n[logger_root]\nhandlers=h\n[handler_h]\nclass=FileHandler\nargs=(open('x'),)\n",
	} {
		if _, err := Load(write(t, name, text), false); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.conf"), false); err == nil || !strings.Contains(err.Error(), "Unable to read logging config file") {
		t.Errorf("missing file: %v", err)
	}
}

func TestStrftime(t *testing.T) {
	f := &formatter{format: "%(asctime)s|%(message)s", datefmt: "%Y/%m/%d %H.%M.%S %%"}
	f.compile(nil)
	r := &record{message: "m", time: mustTime("2026-03-04T05:06:07Z")}
	if got := f.render(r); got != "2026/03/04 05.06.07 %|m\n" {
		t.Errorf("got %q", got)
	}
}

func mustTime(s string) (t time.Time) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// BenchmarkHandler measures one INFO record with context and two
// attributes through the default configuration's line format.
func BenchmarkHandler(b *testing.B) {
	var buf bytes.Buffer
	log := slog.New(Default(Options{Stream: &buf}).Handler()).
		With(LoggerKey, "nodepool.driver.NodeRequestHandler[x]", EventKey, "e1", RequestKey, "200-0000000001")
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		log.Info("fulfilled request", "nodes", "0000000001", "count", 1)
	}
}

func TestTimedRotation(t *testing.T) {
	dir := t.TempDir()
	p := write(t, "logging.conf", `[loggers]
keys=root
[handlers]
keys=t
[formatters]
keys=
[logger_root]
level=INFO
handlers=t
[handler_t]
class=handlers.TimedRotatingFileHandler
args=('`+dir+`/t.log', 'S', 1, 1)
`)
	c, err := Load(p, false)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	log := slog.New(c.Handler())
	log.Info("first")
	time.Sleep(1100 * time.Millisecond)
	log.Info("second")
	time.Sleep(1100 * time.Millisecond)
	log.Info("third")
	data, _ := os.ReadFile(filepath.Join(dir, "t.log"))
	if string(data) != "third\n" {
		t.Errorf("current file: %q", data)
	}
	backups, _ := filepath.Glob(filepath.Join(dir, "t.log.*"))
	if len(backups) != 1 {
		t.Errorf("backups %v, want the newest one (backupCount 1)", backups)
	} else if b, _ := os.ReadFile(backups[0]); string(b) != "second\n" {
		t.Errorf("backup holds %q", b)
	}
}
