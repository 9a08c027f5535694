package config

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/nodepool-go/nodepool/driver"
	// The drivers whose configuration every build can parse.

	"github.com/nodepool-go/nodepool/zkclient"
)

// applySecure merges the secure file.
func applySecure(cfg *Config, root *yaml.Node, probs *driver.Problems) {
	if root == nil {
		return
	}
	s := driver.NewSection(root, "", probs)
	if servers := s.List("zookeeper-servers"); len(servers) > 0 {
		cfg.ZooKeeperServers = nil
		for _, zs := range servers {
			cfg.ZooKeeperServers = append(cfg.ZooKeeperServers, parseZKServer(zs))
		}
	}
	if t := s.Map("zookeeper-tls"); t.Exists() && len(t.Keys()) > 0 {
		cfg.ZooKeeperTLS = parseTLS(t, false)
	}
	for _, ds := range s.List("diskimages") {
		if !ds.Exists() {
			continue
		}
		name := ds.RequiredString("name")
		if !ds.Has("env-vars") {
			ds.Errorf("env-vars", "required key not provided")
		}
		env := ds.StringMap("env-vars")
		if name == "" {
			continue
		}
		d := cfg.Diskimage(name)
		if d == nil {
			probs.Errorf(ds.Line(), "", "unknown diskimage %s", name)
			continue
		}
		for k, v := range env {
			d.EnvVars[k] = v
		}
	}
	// Other keys (and other keys of the entries) are ignored silently.
}

// ZooKeeperClientConfig returns the connection settings of the config:
// hosts "host:port", the single session chroot, the session timeout and
// TLS files (nil = plaintext).
func (c *Config) ZooKeeperClientConfig() (zkclient.Config, error) {
	zc := zkclient.Config{SessionTimeout: c.ZooKeeperTimeout}
	if zc.SessionTimeout <= 0 {
		zc.SessionTimeout = DefaultZooKeeperTimeout
	}
	for _, s := range c.ZooKeeperServers {
		host := s.Host
		if ip := net.ParseIP(host); ip != nil && strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		port := s.Port
		if port == 0 {
			port = DefaultZooKeeperPort
		}
		zc.Hosts = append(zc.Hosts, host+":"+strconv.Itoa(port))
		if s.Chroot == "" {
			continue
		}
		if zc.Chroot != "" && zc.Chroot != s.Chroot {
			return zkclient.Config{}, fmt.Errorf("zookeeper-servers: conflicting chroots %q and %q: a ZooKeeper session has a single chroot; give the same chroot on every entry or only on the last one", zc.Chroot, s.Chroot)
		}
		zc.Chroot = s.Chroot
	}
	if c.ZooKeeperTLS != nil {
		t := *c.ZooKeeperTLS
		var missing []string
		for _, f := range []struct{ key, val string }{{"cert", t.Cert}, {"key", t.Key}, {"ca", t.CA}} {
			if f.val == "" {
				missing = append(missing, f.key)
			}
		}
		if len(missing) > 0 {
			return zkclient.Config{}, fmt.Errorf("zookeeper-tls: missing %s: cert, key and ca are all required", strings.Join(missing, ", "))
		}
		for _, f := range []string{t.Cert, t.Key, t.CA} {
			fh, err := os.Open(f)
			if err != nil {
				return zkclient.Config{}, fmt.Errorf("zookeeper-tls: %w", err)
			}
			fh.Close()
		}
		zc.TLS = &t
	}
	return zc, nil
}
