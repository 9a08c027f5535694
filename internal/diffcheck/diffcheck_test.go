package diffcheck

import "testing"

type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) { r.errs = append(r.errs, format) }

func TestNames(t *testing.T) {
	doc := "The `--json-log` flag, `hold --reason`, `-x`; `--repl` is not accepted and `request-explain y` is new."
	r := &recorder{TB: t}
	Names(r, doc, "cmd", []string{"-c", "--repl", "gone"}, []string{"-c", "-json-log", "hold --reason", "--x", "request-explain", "-new"})
	if len(r.errs) != 2 {
		t.Errorf("want 2 problems (addition -new, omission gone), got %d", len(r.errs))
	}
	if len(Document(t)) == 0 {
		t.Error("empty document")
	}
}
