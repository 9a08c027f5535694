package sshdtest

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// scanKey performs an SSH handshake offering only algo and returns the
// host key the server presented, as "<type> <base64>".
func scanKey(t *testing.T, addr, algo string) (string, error) {
	t.Helper()
	var got string
	cfg := &ssh.ClientConfig{
		User:              "nobody",
		HostKeyAlgorithms: []string{algo},
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			got = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))
			return nil
		},
		Timeout: 5 * time.Second,
	}
	c, err := ssh.Dial("tcp", addr, cfg)
	if c != nil {
		_ = c.Close()
	}
	if got != "" {
		// Authentication is expected to fail; the key was captured.
		return got, nil
	}
	return "", err
}

var algos = []struct {
	keyType string // as in WithKeyTypes
	algo    string
	index   int // index into HostKeys for the default key types
}{
	{"ed25519", ssh.KeyAlgoED25519, 0},
	{"ecdsa", ssh.KeyAlgoECDSA256, 1},
	// OpenSSH >= 8.8 no longer signs with ssh-rsa (SHA-1) by default, so
	// the RSA key is fetched with the SHA-2 signature algorithms; the key
	// itself is still of type ssh-rsa.
	{"rsa", ssh.KeyAlgoRSASHA512, 2},
	{"rsa", ssh.KeyAlgoRSASHA256, 2},
}

func checkKeys(t *testing.T, s *Server) {
	t.Helper()
	for _, a := range algos {
		got, err := scanKey(t, s.Addr, a.algo)
		if err != nil {
			t.Errorf("%s: handshake: %v", a.algo, err)
			continue
		}
		if want := s.HostKeys[a.index]; got != want {
			t.Errorf("%s: got host key %q, want %q", a.algo, got, want)
		}
	}
}

func TestServer(t *testing.T) {
	s := Start(t)
	if s.Host != "127.0.0.1" || s.Port == 0 || s.Addr != net.JoinHostPort(s.Host, itoa(s.Port)) {
		t.Fatalf("bad address: Host=%q Port=%d Addr=%q", s.Host, s.Port, s.Addr)
	}
	if len(s.HostKeys) != 3 {
		t.Fatalf("HostKeys = %q, want 3 entries", s.HostKeys)
	}
	for i, prefix := range []string{"ssh-ed25519 ", "ecdsa-sha2-nistp256 ", "ssh-rsa "} {
		if !strings.HasPrefix(s.HostKeys[i], prefix) || len(strings.Fields(s.HostKeys[i])) != 2 {
			t.Errorf("HostKeys[%d] = %q, want %q<base64>", i, s.HostKeys[i], prefix)
		}
	}
	checkKeys(t, s)

	s.Stop()
	_, err := net.DialTimeout("tcp", s.Addr, 2*time.Second)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial after Stop: got %v, want connection refused", err)
	}
	s.Stop() // idempotent

	s.Restart(t)
	checkKeys(t, s)
	s.Restart(t) // restart while running
	checkKeys(t, s)
}

func TestKeyTypesAndPort(t *testing.T) {
	port := freePort(t)
	s := Start(t, WithKeyTypes("ed25519"), WithPort(port))
	if s.Port != port {
		t.Fatalf("Port = %d, want %d", s.Port, port)
	}
	if len(s.HostKeys) != 1 || !strings.HasPrefix(s.HostKeys[0], "ssh-ed25519 ") {
		t.Fatalf("HostKeys = %q, want one ssh-ed25519 key", s.HostKeys)
	}
	got, err := scanKey(t, s.Addr, ssh.KeyAlgoED25519)
	if err != nil || got != s.HostKeys[0] {
		t.Fatalf("ed25519 scan: got %q, %v; want %q", got, err, s.HostKeys[0])
	}
	if got, err := scanKey(t, s.Addr, ssh.KeyAlgoRSASHA512); err == nil {
		t.Fatalf("rsa scan of ed25519-only server succeeded with %q", got)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
