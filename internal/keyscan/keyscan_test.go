package keyscan

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
)

// sshServer accepts SSH handshakes on loopback with one ed25519 host key.
func sshServer(t *testing.T) (addr string, key ssh.PublicKey) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	signer, err := ssh.NewSignerFromKey(priv)
	require.NoError(t, err)
	conf := &ssh.ServerConfig{NoClientAuth: true}
	conf.AddHostKey(signer)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _, _, _ = ssh.NewServerConn(c, conf)
			}()
		}
	}()
	return ln.Addr().String(), signer.PublicKey()
}

func TestScanHostKeysReadsTheServersKey(t *testing.T) {
	addr, key := sshServer(t)
	host, port, _ := net.SplitHostPort(addr)
	p := 0
	for _, c := range port {
		p = p*10 + int(c-'0')
	}
	keys, err := Scan(context.Background(), host, p, "ssh", 10*time.Second)
	require.NoError(t, err)
	require.Equal(t, []string{strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))}, keys)
}

func TestScanHostKeysTimesOut(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // nothing listens: connection refused until the timeout
	_, err = Scan(context.Background(), "127.0.0.1", port, "ssh", 2*time.Second)
	require.Error(t, err)
	require.Contains(t, err.Error(), "timeout")
}

func TestScanPortOnlyForWinRM(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	keys, err := Scan(context.Background(), "127.0.0.1", ln.Addr().(*net.TCPAddr).Port, "winrm", 5*time.Second)
	require.NoError(t, err)
	require.Empty(t, keys)
}
