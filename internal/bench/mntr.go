package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// MntrDelta is the change of a ZooKeeper server's mntr counters over a run.
// The counters are server-wide: every client's traffic (and pings) counts.
type MntrDelta struct {
	PacketsReceived int64
	PacketsSent     int64
	Counters        map[string]int64 // every numeric mntr value, after minus before
}

// Mntr sends the "mntr" four-letter word to addr and returns its numeric
// values. The server must allow it (4lw.commands.whitelist).
func Mntr(ctx context.Context, addr string) (map[string]int64, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("bench: mntr: %w", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte("mntr")); err != nil {
		return nil, fmt.Errorf("bench: mntr: %w", err)
	}
	out, err := io.ReadAll(conn)
	if err != nil {
		return nil, fmt.Errorf("bench: mntr: %w", err)
	}
	if bytes.Contains(out, []byte("is not executed because it is not in the whitelist")) {
		return nil, fmt.Errorf("bench: mntr is not whitelisted on %s (set 4lw.commands.whitelist=mntr)", addr)
	}
	vals := map[string]int64{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "\t")
		if !ok {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
			vals[k] = n
		}
	}
	if _, ok := vals["zk_packets_received"]; !ok {
		return nil, fmt.Errorf("bench: mntr from %s has no zk_packets_received", addr)
	}
	return vals, nil
}

func diffMntr(before, after map[string]int64) MntrDelta {
	d := MntrDelta{Counters: map[string]int64{}}
	for k, v := range after {
		d.Counters[k] = v - before[k]
	}
	// The mntr connections themselves are one packet each way per sample.
	d.PacketsReceived = d.Counters["zk_packets_received"] - 1
	d.PacketsSent = d.Counters["zk_packets_sent"] - 1
	return d
}
