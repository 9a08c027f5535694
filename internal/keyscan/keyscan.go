// Package keyscan gathers SSH host keys of a booting or registered host.
package keyscan

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// keyAlgorithms are the host key types gathered, one connection each. RSA
// keys are asked for with rsa-sha2-512 (modern servers refuse ssh-rsa); the
// key itself is still reported as "ssh-rsa".
var keyAlgorithms = []string{ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384,
	ssh.KeyAlgoECDSA521, ssh.KeyAlgoRSASHA512}

var errKeyFound = errors.New("host key captured")

// Scan waits until the host accepts connections and returns its
// SSH host keys as "<type> <base64>" lines. For connection types other
// than ssh and network_cli it only waits for the port. It polls every 2 s
// until timeout.
func Scan(ctx context.Context, host string, port int, connType string, timeout time.Duration) ([]string, error) {
	if strings.Contains(host, "fake") {
		return []string{"ssh-rsa FAKEKEY"}, nil
	}
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	deadline := time.Now().Add(timeout)
	gather := connType == "" || connType == "ssh" || connType == "network_cli"
	var lastErr error
	for time.Now().Before(deadline) {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		keys, err := scanOnce(addr, gather, minDur(10*time.Second, time.Until(deadline)))
		if err == nil {
			return keys, nil
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
	return nil, fmt.Errorf("timeout scanning host keys of %s: %v", addr, lastErr)
}

func minDur(a, b time.Duration) time.Duration {
	if a < b {
		return a
	}
	return b
}

func scanOnce(addr string, gather bool, timeout time.Duration) ([]string, error) {
	if !gather {
		c, err := net.DialTimeout("tcp", addr, timeout)
		if err != nil {
			return nil, err
		}
		c.Close()
		return nil, nil
	}
	var keys []string
	for _, algo := range keyAlgorithms {
		var got ssh.PublicKey
		conf := &ssh.ClientConfig{
			User:              "nodepool-keyscan",
			HostKeyAlgorithms: []string{algo},
			Timeout:           timeout,
			HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
				got = key
				return errKeyFound
			},
		}
		c, err := net.DialTimeout("tcp", addr, timeout)
		if err != nil {
			return nil, err
		}
		_ = c.SetDeadline(time.Now().Add(timeout))
		_, _, _, err = ssh.NewClientConn(c, addr, conf)
		c.Close()
		if got != nil {
			keys = append(keys, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(got))))
			continue
		}
		if err != nil && !strings.Contains(err.Error(), "no common algorithm") {
			return nil, err
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("no host keys offered")
	}
	return keys, nil
}
