// Package sshdtest starts a real OpenSSH server (/usr/sbin/sshd) on a
// loopback port with throw-away host keys, for tests of SSH host-key
// scanning.
package sshdtest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// SSHDPath is the sshd binary the helper runs.
const SSHDPath = "/usr/sbin/sshd"

// privsepDir is the privilege-separation directory sshd insists on.
const privsepDir = "/run/sshd"

// startTimeout bounds the wait for sshd to answer with its banner.
const startTimeout = 10 * time.Second

// DefaultKeyTypes are the host key types generated when WithKeyTypes is not given.
var DefaultKeyTypes = []string{"ed25519", "ecdsa", "rsa"}

// Server is a running sshd.
type Server struct {
	// Addr is "Host:Port".
	Addr string
	// Host is the listen address, 127.0.0.1.
	Host string
	// Port is the TCP port sshd listens on.
	Port int
	// HostKeys holds "<type> <base64>" as in the .pub files, one per key type, in key-type order.
	HostKeys []string

	dir    string
	config string

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{} // closed when cmd has been waited for
	stderr *syncBuffer
}

// Option configures Start.
type Option func(*options)

type options struct {
	keyTypes []string
	port     int
}

// WithKeyTypes limits the host keys to the given types ("ed25519", "ecdsa", "rsa").
func WithKeyTypes(types ...string) Option {
	return func(o *options) { o.keyTypes = append([]string(nil), types...) }
}

// WithPort makes sshd listen on port n instead of a free one.
func WithPort(n int) Option {
	return func(o *options) { o.port = n }
}

// Start starts sshd for the test and stops it at t.Cleanup; it fails the test (never skips) when sshd cannot start.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	o := options{keyTypes: DefaultKeyTypes}
	for _, opt := range opts {
		opt(&o)
	}
	if len(o.keyTypes) == 0 {
		t.Fatalf("sshdtest: WithKeyTypes needs at least one key type")
	}
	seen := map[string]bool{}
	for _, kt := range o.keyTypes {
		switch kt {
		case "ed25519", "ecdsa", "rsa":
		default:
			t.Fatalf("sshdtest: unsupported host key type %q (want ed25519, ecdsa or rsa)", kt)
		}
		if seen[kt] {
			t.Fatalf("sshdtest: host key type %q given twice", kt)
		}
		seen[kt] = true
	}

	if fi, err := os.Stat(SSHDPath); err != nil || fi.IsDir() {
		t.Fatalf("sshdtest: %s not found: install openssh-server (scripts/test.sh does)", SSHDPath)
	}
	keygen, err := exec.LookPath("ssh-keygen")
	if err != nil {
		t.Fatalf("sshdtest: ssh-keygen not found: install openssh-server (scripts/test.sh does)")
	}
	if err := os.MkdirAll(privsepDir, 0o755); err != nil {
		t.Fatalf("sshdtest: creating privilege-separation directory %s: %v", privsepDir, err)
	}

	dir := t.TempDir()
	s := &Server{Host: "127.0.0.1", dir: dir}

	var hostKeyLines []string
	for _, kt := range o.keyTypes {
		keyFile := filepath.Join(dir, "ssh_host_"+kt+"_key")
		args := []string{"-q", "-t", kt, "-N", "", "-C", "", "-f", keyFile}
		if kt == "rsa" {
			args = append(args, "-b", "2048") // faster than the default and plenty for tests
		}
		if out, err := exec.Command(keygen, args...).CombinedOutput(); err != nil {
			t.Fatalf("sshdtest: ssh-keygen -t %s: %v\n%s", kt, err, out)
		}
		pub, err := os.ReadFile(keyFile + ".pub")
		if err != nil {
			t.Fatalf("sshdtest: reading %s.pub: %v", keyFile, err)
		}
		fields := strings.Fields(string(pub))
		if len(fields) < 2 {
			t.Fatalf("sshdtest: malformed %s.pub: %q", keyFile, pub)
		}
		s.HostKeys = append(s.HostKeys, fields[0]+" "+fields[1])
		hostKeyLines = append(hostKeyLines, "HostKey "+keyFile)
	}

	s.Port = o.port
	if s.Port == 0 {
		s.Port = freePort(t)
	}
	s.Addr = net.JoinHostPort(s.Host, strconv.Itoa(s.Port))

	s.config = filepath.Join(dir, "sshd_config")
	cfg := strings.Join([]string{
		"ListenAddress " + s.Host,
		"Port " + strconv.Itoa(s.Port),
		strings.Join(hostKeyLines, "\n"),
		"PidFile " + filepath.Join(dir, "sshd.pid"),
		"UsePAM no",
		"StrictModes no",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PubkeyAuthentication yes",
		"AuthorizedKeysFile /dev/null",
		"MaxStartups 100",
		"LogLevel ERROR",
		"",
	}, "\n")
	if err := os.WriteFile(s.config, []byte(cfg), 0o600); err != nil {
		t.Fatalf("sshdtest: writing %s: %v", s.config, err)
	}

	t.Cleanup(s.Stop)
	s.start(t)
	return s
}

// Stop kills sshd (and its per-connection children); it is a no-op when sshd is not running.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

// Restart starts sshd again on the same port with the same keys, stopping it first if it runs.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	s.start(t)
}

func (s *Server) stopLocked() {
	if s.cmd == nil {
		return
	}
	select {
	case <-s.done: // exited on its own
	default:
		// sshd runs in its own process group; kill the group so forked
		// per-connection children go too.
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
	s.done = nil
}

func (s *Server) start(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()

	stderr := &syncBuffer{}
	cmd := exec.Command(SSHDPath, "-D", "-e", "-f", s.config)
	cmd.Stdout = stderr
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("sshdtest: starting %s: %v", SSHDPath, err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(done)
	}()
	s.cmd, s.done, s.stderr = cmd, done, stderr

	deadline := time.Now().Add(startTimeout)
	var lastErr error
	for {
		select {
		case <-done:
			s.cmd, s.done = nil, nil
			t.Fatalf("sshdtest: sshd on %s exited during start-up (%v); config %s; output:\n%s",
				s.Addr, waitErr, s.config, stderr.String())
		default:
		}
		if lastErr = checkBanner(s.Addr); lastErr == nil {
			return
		}
		if time.Now().After(deadline) {
			s.stopLocked()
			t.Fatalf("sshdtest: sshd on %s did not answer within %v (last error: %v); config %s; output:\n%s",
				s.Addr, startTimeout, lastErr, s.config, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkBanner connects to addr and reads the SSH identification line.
func checkBanner(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return fmt.Errorf("reading banner: %w", err)
	}
	if !strings.HasPrefix(line, "SSH-2.0") {
		return fmt.Errorf("unexpected banner %q", strings.TrimSpace(line))
	}
	return nil
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("sshdtest: finding a free port: %v", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		t.Fatalf("sshdtest: closing probe listener: %v", err)
	}
	return port
}

// syncBuffer is a bytes.Buffer safe for a writer goroutine and a reader.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
