package logconfig

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// streamLocks serialises writes to a shared stream (stdout, stderr).
var streamLocks sync.Map // io.Writer → *sync.Mutex

type streamSink struct {
	w  io.Writer
	mu *sync.Mutex
}

func newStreamSink(w io.Writer) *streamSink {
	mu, _ := streamLocks.LoadOrStore(w, &sync.Mutex{})
	return &streamSink{w: w, mu: mu.(*sync.Mutex)}
}

func (s *streamSink) write(p []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.w.Write(p)
	return err
}

func (s *streamSink) close() error { return nil }

// fileSink writes to a file, reopening it when it was moved away (watch),
// rotating it by size (maxBytes, backups) or by time (every, backups).
type fileSink struct {
	path   string
	mode   int // os.O_APPEND or os.O_TRUNC on first open
	watch  bool
	maxLen int64
	every  time.Duration
	midnt  bool
	utc    bool
	backup int

	mu      sync.Mutex
	f       *os.File
	size    int64
	rollAt  time.Time
	checkAt time.Time
}

func (s *fileSink) open(flag int) error {
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_CREATE|flag, 0o644)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	s.f, s.size = f, st.Size()
	return nil
}

// start opens the file for the first time.
func (s *fileSink) start() error {
	if err := s.open(s.mode); err != nil {
		return err
	}
	if s.every > 0 {
		s.rollAt = s.nextRoll(time.Now())
	}
	return nil
}

func (s *fileSink) write(p []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.watch {
		s.reopenIfMoved()
	}
	if s.maxLen > 0 && s.f != nil && s.size > 0 && s.size+int64(len(p)) >= s.maxLen {
		s.rotate(func(i int) string { return fmt.Sprintf("%s.%d", s.path, i) })
	}
	if s.every > 0 && !time.Now().Before(s.rollAt) {
		suffix := s.rollAt.Add(-s.every)
		s.rotateTimed(suffix)
		s.rollAt = s.nextRoll(time.Now())
	}
	if s.f == nil {
		if err := s.open(os.O_APPEND); err != nil {
			return err
		}
	}
	n, err := s.f.Write(p)
	s.size += int64(n)
	return err
}

// reopenIfMoved reopens the file when the path no longer names the open
// file (moved away by logrotate, or deleted).
func (s *fileSink) reopenIfMoved() {
	if s.f == nil {
		return
	}
	cur, err1 := s.f.Stat()
	now, err2 := os.Stat(s.path)
	if err1 == nil && err2 == nil && os.SameFile(cur, now) {
		return
	}
	s.f.Close()
	s.f = nil
}

// rotate shifts path.1 … path.(n-1) up by one and moves path to path.1
// (nothing is renamed without backups: the file is truncated instead).
func (s *fileSink) rotate(name func(int) string) {
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
	if s.backup <= 0 {
		_ = s.open(os.O_TRUNC)
		return
	}
	for i := s.backup - 1; i >= 1; i-- {
		if _, err := os.Stat(name(i)); err == nil {
			_ = os.Rename(name(i), name(i+1))
		}
	}
	_ = os.Rename(s.path, name(1))
	_ = s.open(os.O_TRUNC)
}

// rotateTimed moves path to path.<start of the period> and keeps the
// newest backup files.
func (s *fileSink) rotateTimed(period time.Time) {
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
	layout := "2006-01-02_15-04-05"
	switch {
	case s.midnt || s.every >= 24*time.Hour:
		layout = "2006-01-02"
	case s.every >= time.Hour:
		layout = "2006-01-02_15"
	case s.every >= time.Minute:
		layout = "2006-01-02_15-04"
	}
	_ = os.Rename(s.path, s.path+"."+period.Format(layout))
	if s.backup > 0 {
		s.pruneTimed()
	}
	_ = s.open(os.O_TRUNC)
}

func (s *fileSink) pruneTimed() {
	matches, _ := globQuote(s.path + ".")
	if len(matches) <= s.backup {
		return
	}
	for _, m := range matches[:len(matches)-s.backup] {
		_ = os.Remove(m)
	}
}

func (s *fileSink) nextRoll(now time.Time) time.Time {
	if s.utc {
		now = now.UTC()
	}
	if s.midnt {
		y, m, d := now.Date()
		return time.Date(y, m, d+1, 0, 0, 0, 0, now.Location())
	}
	return now.Add(s.every)
}

func (s *fileSink) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}
