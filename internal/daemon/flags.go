package daemon

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/nodepool-go/nodepool/internal/logconfig"
	"github.com/nodepool-go/nodepool/internal/version"
)

// Flags are the command-line options both daemons take with upstream's
// meaning, plus the JSON log switch and the profile server.
type Flags struct {
	Config     string // -c
	Secure     string // -s
	LogConfig  string // -l
	PidFile    string // -p
	Debug      bool   // -d (and --debug)
	Foreground bool   // -f
	Version    bool   // --version
	JSONLog    bool   // --json-log
	Pprof      string // --pprof
}

// ForegroundNote ends the usage text of both daemons.
const ForegroundNote = "The daemon always runs in the foreground (as under systemd or in a container); -d and -f are accepted for compatibility, and -d also turns on debug logging when no -l is given."

// Register defines the flags on fs, with fs's usage text naming the
// program and ending with ForegroundNote.
func (f *Flags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.Config, "c", "/etc/nodepool/nodepool.yaml", "path to config file")
	fs.StringVar(&f.Secure, "s", "", "path to secure file")
	fs.StringVar(&f.LogConfig, "l", "", "path to log config file (Python logging: YAML/JSON dictionary or INI file form)")
	fs.StringVar(&f.PidFile, "p", "", "write the process id to this file while running (none by default)")
	fs.BoolVar(&f.Debug, "d", false, "run in the foreground with debug logging")
	fs.BoolVar(&f.Debug, "debug", false, "same as -d")
	fs.BoolVar(&f.Foreground, "f", false, "run in the foreground (always the case)")
	fs.BoolVar(&f.Version, "version", false, "show nodepool version")
	fs.BoolVar(&f.JSONLog, "json-log", false, "write log records as JSON objects (slog's JSON form) instead of text lines")
	fs.StringVar(&f.Pprof, "pprof", "", "serve Go runtime profiles on this address (e.g. 127.0.0.1:6060)")
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "Usage of %s:\n", fs.Name())
		fs.PrintDefaults()
		fmt.Fprintln(out, "\n"+ForegroundNote)
	}
}

// VersionLine is what --version prints.
func VersionLine() string { return "Nodepool version: " + version.String() }

// Process is a started daemon's logging, pid file and signal handling.
type Process struct {
	// Log is the daemon's logger (also the slog default).
	Log  *slog.Logger
	cfg  *logconfig.Config
	pid  string
	stop chan struct{}
	once sync.Once
}

// Start sets up what a daemon needs before its work begins: logging from
// -l (or upstream's default, at debug level with -d), the pid file of -p,
// the SIGUSR2 stack dump, the profile server. Warnings about the logging
// configuration are logged. Close undoes it.
func Start(f *Flags) (*Process, error) {
	var cfg *logconfig.Config
	if f.LogConfig != "" {
		path, _ := filepath.Abs(f.LogConfig)
		c, err := logconfig.Load(path, f.JSONLog)
		if err != nil {
			return nil, err
		}
		cfg = c
	} else {
		cfg = logconfig.Default(logconfig.Options{Debug: f.Debug, JSON: f.JSONLog})
	}
	log := slog.New(cfg.Handler())
	slog.SetDefault(log)
	p := &Process{Log: log, cfg: cfg, stop: make(chan struct{})}
	for _, w := range cfg.Warnings {
		log.With(logconfig.LoggerKey, "nodepool.logconfig").Warn("logging configuration: " + w)
	}
	if f.PidFile != "" {
		path, _ := filepath.Abs(f.PidFile)
		if err := WritePidFile(path); err != nil {
			cfg.Close()
			return nil, err
		}
		p.pid = path
	}
	p.dumpStacksOnSIGUSR2()
	ServeProfiles(f.Pprof, log)
	return p, nil
}

// Close removes the pid file, stops the signal handler and closes the log
// files.
func (p *Process) Close() {
	p.once.Do(func() {
		close(p.stop)
		if p.pid != "" {
			RemovePidFile(p.pid)
		}
		p.cfg.Close()
	})
}

// dumpStacksOnSIGUSR2 logs every goroutine's stack at DEBUG on the
// nodepool.stack_dump logger each time the process gets SIGUSR2.
func (p *Process) dumpStacksOnSIGUSR2() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGUSR2)
	log := p.Log.With(logconfig.LoggerKey, "nodepool.stack_dump")
	go func() {
		defer signal.Stop(sigs)
		for {
			select {
			case <-p.stop:
				return
			case <-sigs:
				DumpStacks(log)
			}
		}
	}()
}

// DumpStacks logs the stacks of all goroutines at DEBUG, framed by the
// beginning and end lines upstream's handler writes.
func DumpStacks(log *slog.Logger) {
	log.Debug("Beginning debug handler")
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) || len(buf) >= 64<<20 {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	log.Debug(strings.TrimRight(string(buf), "\n"))
	log.Debug("End debug handler")
}

// WritePidFile writes the process id to path. A file left by a process
// that no longer runs is replaced; one of a running process (other than
// this one) is an error.
func WritePidFile(path string) error {
	if data, err := os.ReadFile(path); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && pid > 0 && pid != os.Getpid() {
			if err := syscall.Kill(pid, 0); err == nil || errors.Is(err, syscall.EPERM) {
				return fmt.Errorf("pid file %s: process %d is running", path, pid)
			}
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("pid file: %w", err)
	}
	return nil
}

// RemovePidFile removes path if it still holds this process's id.
func RemovePidFile(path string) {
	data, err := os.ReadFile(path)
	if err == nil && strings.TrimSpace(string(data)) == strconv.Itoa(os.Getpid()) {
		os.Remove(path)
	}
}

// PrintVersion writes VersionLine to w.
func PrintVersion(w io.Writer) { fmt.Fprintln(w, VersionLine()) }

// FlagNames lists the flags defined on fs as upstream's parser spells
// them: "-x" for one-letter names, "--name" for longer ones.
func FlagNames(fs *flag.FlagSet) []string {
	var out []string
	fs.VisitAll(func(f *flag.Flag) {
		if len(f.Name) == 1 {
			out = append(out, "-"+f.Name)
		} else {
			out = append(out, "--"+f.Name)
		}
	})
	return out
}
