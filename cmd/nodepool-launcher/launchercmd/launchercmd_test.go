package launchercmd

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodepool-go/nodepool/internal/daemon"
	"github.com/nodepool-go/nodepool/internal/diffcheck"
	"github.com/nodepool-go/nodepool/internal/zktest"
)

// writeConfig writes a one-provider simcloud configuration on a fresh
// ZooKeeper chroot whose label keeps one node ready.
func writeConfig(t *testing.T, dir string) string {
	t.Helper()
	_, chroot := zktest.Connect(t)
	host, port, err := net.SplitHostPort(zktest.Hosts()[0])
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "nodepool.yaml")
	yaml := fmt.Sprintf(`zookeeper-servers:
  - host: %s
    port: %s
    chroot: %s
labels:
  - name: small
    min-ready: 1
providers:
  - name: sim
    driver: simcloud
    boot-time: [0.1, 0.2]
    pools:
      - name: main
        max-servers: 2
        labels:
          - name: small
`, host, port, chroot)
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// waitFor polls cond until it holds or 30 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func fileContains(path string, re *regexp.Regexp) func() bool {
	return func() bool {
		data, _ := os.ReadFile(path)
		return re.Match(data)
	}
}

// startMain runs Main in the background; the returned channel yields its
// exit code.
func startMain(args ...string) chan int {
	done := make(chan int, 1)
	go func() { done <- Main(args) }()
	return done
}

// stop sends SIGINT (Main's graceful stop) and waits for Main to return.
func stop(t *testing.T, done chan int) {
	t.Helper()
	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case rc := <-done:
		if rc != 0 {
			t.Errorf("exit code %d after SIGINT", rc)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("launcher did not stop after SIGINT")
	}
}

// upstreamLoggingConf is an INI logging file in the shape of upstream's
// sample, writing to a watched file.
const upstreamLoggingConf = `[formatters]
keys=simple

[loggers]
keys=root,nodepool,kazoo

[handlers]
keys=console,normal

[logger_root]
level=WARNING
handlers=console

[logger_nodepool]
level=INFO
handlers=normal
qualname=nodepool
propagate=0

[logger_kazoo]
level=WARNING
handlers=normal
qualname=kazoo
propagate=0

[handler_console]
level=WARNING
class=StreamHandler
formatter=simple
args=(sys.stderr,)

[handler_normal]
level=DEBUG
class=logging.handlers.WatchedFileHandler
formatter=simple
args=('LOGFILE',)

[formatter_simple]
format=%(asctime)s %(levelname)s %(name)s: %(message)s
datefmt=
`

// TestUnitFileCommandLine runs the launcher as a systemd unit would:
// -d -l logging.conf -p pidfile, over a stale pid file.
func TestUnitFileCommandLine(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir)
	logFile := filepath.Join(dir, "launcher.log")
	logConf := filepath.Join(dir, "logging.conf")
	if err := os.WriteFile(logConf, []byte(strings.Replace(upstreamLoggingConf, "LOGFILE", logFile, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(dir, "run", "nodepool", "launcher.pid")
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(pidFile), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(dead.Process.Pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	done := startMain("-d", "-l", logConf, "-p", pidFile, "-c", cfg, "--no-webapp")
	me := strconv.Itoa(os.Getpid()) + "\n"
	waitFor(t, "the pid file", func() bool { b, _ := os.ReadFile(pidFile); return string(b) == me })
	line := `(?m)^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) `
	waitFor(t, "the ZooKeeper client's log line", fileContains(logFile, regexp.MustCompile(line+`nodepool\.zk\.ZooKeeper: ZooKeeper session connected`)))
	waitFor(t, "a request handler's line with the request id", fileContains(logFile,
		regexp.MustCompile(line+`nodepool\.driver\.NodeRequestHandler\[[^]]+\]: (\[e: [0-9a-f]+\] )?\[node_request: \d+-\d+\] `)))
	// The INI file sets the nodepool logger to INFO: -d does not override
	// a logging file, as upstream.
	if data, _ := os.ReadFile(logFile); regexp.MustCompile(`(?m)^\S+ \S+ DEBUG `).Match(data) {
		t.Error("DEBUG records written although the logging file says INFO")
	}

	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	stop(t, done)
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Errorf("pid file left behind: %v", err)
	}
	data, _ := os.ReadFile(logFile)
	if strings.Contains(string(data), "level=") || strings.Contains(string(data), "msg=") {
		t.Errorf("slog text format in the log file:\n%s", data)
	}
}

// TestStackDumpAndContainerCommand runs the launcher as upstream's
// container image does (-f, logging to standard output) and dumps the
// stacks with SIGUSR2 under -d.
func TestStackDumpAndContainerCommand(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir)
	out := filepath.Join(dir, "stdout")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	saved := os.Stdout
	os.Stdout = f
	defer func() { os.Stdout = saved }()

	done := startMain("-f", "-d", "-c", cfg, "--no-webapp")
	waitFor(t, "a request handler's log line on stdout", fileContains(out, regexp.MustCompile(`(?m)^\S+ \S+ (INFO|DEBUG) nodepool\.driver\.NodeRequestHandler\[\S+-PoolWorker\.sim-main-[0-9a-f]+\]: `)))
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the stack dump", fileContains(out, regexp.MustCompile(`(?s)DEBUG nodepool\.stack_dump: Beginning debug handler\n.*DEBUG nodepool\.stack_dump: goroutine \d+ .*\n.*DEBUG nodepool\.stack_dump: End debug handler`)))
	stop(t, done)
}

func TestVersionAndBadFlags(t *testing.T) {
	out := filepath.Join(t.TempDir(), "stdout")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stdout
	os.Stdout = f
	rc := Main([]string{"--version"})
	os.Stdout = saved
	f.Close()
	data, _ := os.ReadFile(out)
	if rc != 0 || !regexp.MustCompile(`^Nodepool version: \d+\.\d+\.\d+\S*\n$`).Match(data) {
		t.Errorf("--version: exit %d, output %q", rc, data)
	}
	if rc := Main([]string{"-x"}); rc != 2 {
		t.Errorf("unknown flag: exit %d, want 2", rc)
	}
	if rc := Main([]string{"-l", "/nonexistent/logging.conf"}); rc != 1 {
		t.Errorf("missing logging file: exit %d, want 1", rc)
	}
}

// TestDifferencesNameEveryFlag: each flag that upstream's launcher lacks
// (and the reverse) is named in docs/differences.md.
func TestDifferencesNameEveryFlag(t *testing.T) {
	fs, _, _, _, _ := flags()
	diffcheck.Names(t, diffcheck.Document(t), "nodepool-launcher",
		[]string{"-l", "--version", "-p", "-d", "-f", "-c", "-s", "--no-webapp", "--repl"},
		daemon.FlagNames(fs))
}
