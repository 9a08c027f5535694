package zktest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Server is a dedicated plaintext ZooKeeper for one test, which the test
// may stop and start again (its data directory survives, so sessions and
// znodes survive a restart as they would on a real server).
type Server struct {
	Addr string
	dir  string
	cfg  string
	cmd  *exec.Cmd
}

// StartServer starts a dedicated ZooKeeper (Debian's package) on a free
// loopback port; it is killed when the test ends.
func StartServer(t testing.TB) *Server {
	t.Helper()
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s := &Server{Addr: fmt.Sprintf("127.0.0.1:%d", port), dir: dir, cfg: filepath.Join(dir, "zoo.cfg")}
	conf := fmt.Sprintf("tickTime=2000\ndataDir=%s/data\nclientPortAddress=127.0.0.1\nclientPort=%d\nmaxClientCnxns=0\nadmin.enableServer=false\n4lw.commands.whitelist=*\nminSessionTimeout=1000\nmaxSessionTimeout=60000\n", dir, port)
	if err := os.WriteFile(s.cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	s.Start(t)
	t.Cleanup(s.Stop)
	return s
}

// Start starts the server (again) and waits until it answers.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	const jars = "/usr/share/java"
	if _, err := os.Stat(jars + "/zookeeper.jar"); err != nil {
		t.Fatalf("zktest: Debian's zookeeper package is not installed (scripts/test.sh installs it)")
	}
	cp := []string{s.dir}
	for _, j := range []string{"zookeeper", "zookeeper-jute", "slf4j-api", "slf4j-nop"} {
		if _, err := os.Stat(jars + "/" + j + ".jar"); err == nil {
			cp = append(cp, jars+"/"+j+".jar")
		}
	}
	out, _ := os.OpenFile(filepath.Join(s.dir, "server.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	s.cmd = exec.Command("java", "-Xmx256m", "-cp", strings.Join(cp, ":"), "org.apache.zookeeper.server.quorum.QuorumPeerMain", s.cfg)
	s.cmd.Stdout, s.cmd.Stderr = out, out
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("zktest: starting ZooKeeper: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if ruok(s.Addr) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	log, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
	t.Fatalf("zktest: ZooKeeper did not come up on %s:\n%s", s.Addr, log)
}

// Stop kills the server process.
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		s.cmd = nil
	}
}

func ruok(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("ruok")); err != nil {
		return false
	}
	buf := make([]byte, 4)
	n, _ := c.Read(buf)
	return string(buf[:n]) == "imok"
}
