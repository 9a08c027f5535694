package zktest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodepool-go/nodepool/zkclient"
)

// TLSServer is a dedicated ZooKeeper with only a secure client port and a
// throw-away CA, started for one test.
type TLSServer struct {
	Addr string // 127.0.0.1:port of the secure client port
	Dir  string
	// Client holds the PEM files of a client certificate signed by the
	// server's CA.
	Client zkclient.TLSFiles
}

// PKI is a throw-away certificate authority.
type PKI struct {
	dir    string
	caCert *x509.Certificate
	caKey  *rsa.PrivateKey
	CAFile string
}

// NewPKI makes a CA in a temporary directory.
func NewPKI(t testing.TB, name string) *PKI {
	t.Helper()
	dir := t.TempDir()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	p := &PKI{dir: dir, caCert: cert, caKey: key, CAFile: filepath.Join(dir, "ca.pem")}
	writePEM(t, p.CAFile, "CERTIFICATE", der)
	return p
}

// Issue makes a certificate for 127.0.0.1/localhost usable by servers and
// clients, and returns the certificate and key file paths.
func (p *PKI) Issue(t testing.TB, name string) (certFile, keyFile string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(p.dir, name+".pem"), filepath.Join(p.dir, name+".key")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "PRIVATE KEY", pk)
	return certFile, keyFile
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// StartTLSServer starts a ZooKeeper (Debian's package) whose only client
// port is TLS with client authentication, trusting pki. It is stopped when
// the test ends; it fails the test (never skips) when it cannot start.
func StartTLSServer(t testing.TB, pki *PKI) *TLSServer {
	t.Helper()
	const jars = "/usr/share/java"
	if _, err := os.Stat(jars + "/zookeeper.jar"); err != nil {
		t.Fatalf("zktest: Debian's zookeeper package is not installed (scripts/test.sh installs it)")
	}
	dir := t.TempDir()
	serverCert, serverKey := pki.Issue(t, "server")
	certPEM, _ := os.ReadFile(serverCert)
	keyPEM, _ := os.ReadFile(serverKey)
	keystore := filepath.Join(dir, "keystore.pem")
	if err := os.WriteFile(keystore, append(certPEM, keyPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cfg := fmt.Sprintf(`tickTime=2000
dataDir=%s/data
secureClientPortAddress=127.0.0.1
secureClientPort=%d
serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory
ssl.keyStore.location=%s
ssl.keyStore.type=PEM
ssl.trustStore.location=%s
ssl.trustStore.type=PEM
admin.enableServer=false
maxClientCnxns=0
`, dir, port, keystore, pki.CAFile)
	cfgFile := filepath.Join(dir, "zoo.cfg")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cp := []string{dir}
	for _, j := range []string{"zookeeper", "zookeeper-jute", "slf4j-api", "slf4j-nop", "netty-handler", "netty-common",
		"netty-buffer", "netty-transport", "netty-codec", "netty-resolver", "netty-transport-native-unix-common",
		"netty-transport-native-epoll"} {
		if _, err := os.Stat(jars + "/" + j + ".jar"); err == nil {
			cp = append(cp, jars+"/"+j+".jar")
		}
	}
	cmd := exec.Command("java", "-Xmx256m", "-cp", strings.Join(cp, ":"),
		"org.apache.zookeeper.server.quorum.QuorumPeerMain", cfgFile)
	out, _ := os.Create(filepath.Join(dir, "server.log"))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("zktest: starting the TLS ZooKeeper: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		out.Close()
	})
	s := &TLSServer{Addr: fmt.Sprintf("127.0.0.1:%d", port), Dir: dir}
	cc, ck := pki.Issue(t, "client")
	s.Client = zkclient.TLSFiles{Cert: cc, Key: ck, CA: pki.CAFile}
	// Ready once a TLS handshake with our client certificate succeeds.
	cert, err := tls.LoadX509KeyPair(cc, ck)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(pki.caCert)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		d := &net.Dialer{Timeout: time.Second}
		c, err := tls.DialWithDialer(d, "tcp", s.Addr, &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots, ServerName: "127.0.0.1"})
		if err == nil {
			c.Close()
			return s
		}
		time.Sleep(200 * time.Millisecond)
	}
	log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
	t.Fatalf("zktest: the TLS ZooKeeper did not come up on %s:\n%s", s.Addr, log)
	return nil
}

// ConnectTLS connects to a TLS server with the given files, bounded by
// timeout.
func ConnectTLS(addr string, files zkclient.TLSFiles, timeout time.Duration) (*zkclient.Client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cfg := Config("")
	cfg.Hosts = []string{addr}
	cfg.TLS = &files
	return zkclient.Connect(ctx, cfg)
}
