package nodepool

import (
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"
)

// statsd sends upstream's metric names to a statsd server when STATSD_HOST
// or STATSD_PORT is set; otherwise it does nothing.
type statsd struct {
	once sync.Once
	conn net.Conn
}

func (s *statsd) dial() {
	host, port := os.Getenv("STATSD_HOST"), os.Getenv("STATSD_PORT")
	if host == "" && port == "" {
		return
	}
	if host == "" {
		host = "localhost"
	}
	if port == "" {
		port = "8125"
	}
	c, err := net.Dial("udp", net.JoinHostPort(host, port))
	if err == nil {
		s.conn = c
	}
}

func (s *statsd) send(line string) {
	s.once.Do(s.dial)
	if s.conn == nil {
		return
	}
	_, _ = s.conn.Write([]byte(line))
}

func (s *statsd) incr(key string) { s.send(key + ":1|c") }

func (s *statsd) timing(key string, d time.Duration) {
	s.send(fmt.Sprintf("%s:%d|ms", key, d.Milliseconds()))
}

func (s *statsd) gauge(key string, v int64) { s.send(fmt.Sprintf("%s:%d|g", key, v)) }

// launch records a launch result under every key of launcher.md §13.
func (s *statsd) launch(nl *nodeLaunch, result string) {
	d := nl.p.l.now().Sub(nl.firstTick)
	keys := []string{"nodepool.launch." + result, "nodepool.launch.provider." + nl.p.cfg.Name + "." + result}
	if nl.node.AZ != "" {
		keys = append(keys, "nodepool.launch.provider."+nl.p.cfg.Name+"."+nl.node.AZ+"."+result)
	}
	if r := nl.h.req.Requestor; r != "" {
		keys = append(keys, "nodepool.launch.requestor."+strings.NewReplacer(".", "_", ":", "_").Replace(r)+"."+result)
	}
	for _, k := range keys {
		s.timing(k, d)
		s.incr(k)
	}
}
