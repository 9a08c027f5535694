package daemon

import (
	"bytes"
	"flag"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestPidFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "d.pid")
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(strconv.Itoa(dead.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WritePidFile(path); err != nil {
		t.Fatalf("stale pid file: %v", err)
	}
	if data, _ := os.ReadFile(path); string(data) != strconv.Itoa(os.Getpid())+"\n" {
		t.Errorf("pid file holds %q", data)
	}
	// A running process's pid file is not taken over.
	other := filepath.Join(dir, "other.pid")
	if err := os.WriteFile(other, []byte(strconv.Itoa(os.Getppid())), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WritePidFile(other); err == nil || !strings.Contains(err.Error(), "is running") {
		t.Errorf("running process's pid file: %v", err)
	}
	RemovePidFile(other) // not ours: kept
	if _, err := os.Stat(other); err != nil {
		t.Error("removed another process's pid file")
	}
	RemovePidFile(path)
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("own pid file kept: %v", err)
	}
}

func TestDumpStacks(t *testing.T) {
	var buf bytes.Buffer
	DumpStacks(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	out := buf.String()
	for _, want := range []string{"Beginning debug handler", "goroutine ", "TestDumpStacks", "End debug handler"} {
		if !strings.Contains(out, want) {
			t.Errorf("stack dump lacks %q", want)
		}
	}
}

func TestFlagNames(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	var f Flags
	f.Register(fs)
	got := strings.Join(FlagNames(fs), " ")
	for _, want := range []string{"-c", "-s", "-l", "-p", "-d", "-f", "--version", "--json-log"} {
		if !strings.Contains(" "+got+" ", " "+want+" ") {
			t.Errorf("%s missing from %q", want, got)
		}
	}
	if err := fs.Parse([]string{"-d", "-f", "-l", "x.conf", "--version"}); err != nil || !f.Debug || !f.Foreground || !f.Version || f.LogConfig != "x.conf" {
		t.Errorf("parse: %v %+v", err, f)
	}
}
