package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// ProcStats are a process's resource figures from /proc.
type ProcStats struct {
	CPUSeconds float64 // user + system time (a delta in Result)
	PeakRSSKB  int64   // VmHWM: peak resident set size over the process's life
	RSSKB      int64   // VmRSS: resident set size when sampled
	// AnonKB and FileKB split RSSKB into the process's own memory (heap,
	// stacks) and the pages of its binary and other files it maps.
	AnonKB, FileKB int64
	// PeakAnonKB and PeakFileKB are the largest AnonKB and FileKB seen by
	// a Sampler (the kernel keeps no peak of either).
	PeakAnonKB, PeakFileKB int64
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
		for key, dst := range map[string]*int64{"VmHWM:": &ps.PeakRSSKB, "VmRSS:": &ps.RSSKB, "RssAnon:": &ps.AnonKB, "RssFile:": &ps.FileKB} {
			if v, ok := strings.CutPrefix(sc.Text(), key); ok {
				kb, _ := strings.CutSuffix(strings.TrimSpace(v), " kB")
				*dst, _ = strconv.ParseInt(strings.TrimSpace(kb), 10, 64)
			}
		}
	}
	return ps, sc.Err()
}

// Sampler polls a process's resident memory until stopped, keeping the
// peaks of its anonymous and file-backed parts.
type Sampler struct {
	pid       int
	stop      chan struct{}
	done      chan struct{}
	anon, fil int64
}

// StartSampler polls pid every interval.
func StartSampler(pid int, interval time.Duration) *Sampler {
	s := &Sampler{pid: pid, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			s.sample()
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *Sampler) sample() {
	ps, err := ReadProc(s.pid)
	if err != nil {
		return
	}
	s.anon, s.fil = max(s.anon, ps.AnonKB), max(s.fil, ps.FileKB)
}

// Stop ends the polling, takes a last sample and returns the peaks in KB.
func (s *Sampler) Stop() (anonKB, fileKB int64) {
	close(s.stop)
	<-s.done
	s.sample()
	return s.anon, s.fil
}
