package driver

import (
	"fmt"
	"strings"
)

// ConfigError is one problem in a configuration file.
type ConfigError struct {
	File string // the file's path ("" when unknown)
	Line int    // 1-based; 0 when unknown
	Path string // key path, e.g. "providers[0].pools[1].max-servers"
	Msg  string // what is wrong
}

// Error formats the problem as "file:line: path: msg", leaving out the
// parts that are unknown.
func (e *ConfigError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Problems collects configuration errors and warnings.
type Problems struct {
	File string // the file the problems are in, copied into each one
	// Strict selects config-validate semantics: unknown keys and null
	// values of typed keys are errors, load-time cross-checks are skipped.
	Strict   bool
	Errors   []*ConfigError // problems that make the file unusable
	Warnings []*ConfigError // problems that are only logged (unknown keys, ...)
	// Step is the config-validate step that failed (StepParse, StepSchema,
	// StepReferences); 0 when none failed or when loading.
	Step int
}

// Validation steps of config-validate.
const (
	StepParse      = 1
	StepSchema     = 2
	StepReferences = 3
)

// Errorf records an error that belongs to no section.
func (p *Problems) Errorf(line int, path, format string, args ...any) {
	p.Errors = append(p.Errors, &ConfigError{File: p.File, Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// Warnf records a warning that belongs to no section.
func (p *Problems) Warnf(line int, path, format string, args ...any) {
	p.Warnings = append(p.Warnings, &ConfigError{File: p.File, Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// Err returns the collected errors as one error, or nil.
func (p *Problems) Err() error {
	if len(p.Errors) == 0 {
		return nil
	}
	return &ErrorList{Errors: p.Errors}
}

// ErrorList is a set of configuration errors.
type ErrorList struct {
	Errors []*ConfigError // in file order
}

// Error joins the errors' messages, one a line.
func (l *ErrorList) Error() string {
	msgs := make([]string, len(l.Errors))
	for i, e := range l.Errors {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}
