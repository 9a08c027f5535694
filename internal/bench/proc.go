package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ProcStats are a process's resource figures from /proc.
type ProcStats struct {
	CPUSeconds float64 // user + system time (a delta in Result)
	PeakRSSKB  int64   // VmHWM: peak resident set size over the process's life
	RSSKB      int64   // VmRSS: resident set size when sampled
}

// clockTicks is USER_HZ, which is 100 on every Linux architecture Go runs on.
const clockTicks = 100

// ReadProc samples the CPU time (/proc/<pid>/stat) and peak RSS
// (/proc/<pid>/status) of a process.
func ReadProc(pid int) (ProcStats, error) {
	var ps ProcStats
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ps, fmt.Errorf("bench: launcher process: %w", err)
	}
	// The command name (field 2) may contain spaces; fields resume after ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return ps, fmt.Errorf("bench: unexpected /proc/%d/stat", pid)
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return ps, fmt.Errorf("bench: short /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return ps, fmt.Errorf("bench: unparsable /proc/%d/stat", pid)
	}
	ps.CPUSeconds = float64(ut+st) / clockTicks
	status, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ps, fmt.Errorf("bench: launcher process: %w", err)
	}
	defer status.Close()
	sc := bufio.NewScanner(status)
	for sc.Scan() {
		for key, dst := range map[string]*int64{"VmHWM:": &ps.PeakRSSKB, "VmRSS:": &ps.RSSKB} {
			if v, ok := strings.CutPrefix(sc.Text(), key); ok {
				kb, _ := strings.CutSuffix(strings.TrimSpace(v), " kB")
				*dst, _ = strconv.ParseInt(strings.TrimSpace(kb), 10, 64)
			}
		}
	}
	return ps, sc.Err()
}
