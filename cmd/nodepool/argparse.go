package main

import (
	"fmt"
	"io"
	"strings"
)

// A small re-implementation of the parts of Python's argparse the nodepool
// command uses, reproducing its help/usage layout, messages and exit codes.

const (
	helpWidth       = 78 // $COLUMNS (80) - 2, argparse's default
	maxHelpPosition = 24
)

type optKind int

const (
	kindStore optKind = iota
	kindTrue
	kindHelp
	kindVersion
)

type option struct {
	flags    []string // e.g. "-h", "--help"; empty for positionals
	dest     string
	metavar  string
	help     string
	kind     optKind
	required bool
	optional bool     // positional with nargs='?'
	choices  []string // allowed values, nil for any
}

func (o *option) positional() bool { return len(o.flags) == 0 }

func (o *option) meta() string {
	if o.metavar != "" {
		return o.metavar
	}
	if len(o.choices) > 0 {
		return "{" + strings.Join(o.choices, ",") + "}"
	}
	if o.positional() {
		return o.dest
	}
	return strings.ToUpper(o.dest)
}

// usagePart is how an option appears in the usage line.
func (o *option) usagePart() string {
	if o.positional() {
		if o.optional {
			return "[" + o.meta() + "]"
		}
		return o.meta()
	}
	s := o.flags[0]
	if o.kind == kindStore {
		s += " " + o.meta()
	}
	if !o.required {
		s = "[" + s + "]"
	}
	return s
}

// invocation is how an option appears in the help's option list.
func (o *option) invocation() string {
	if o.positional() {
		return o.meta()
	}
	if o.kind != kindStore {
		return strings.Join(o.flags, ", ")
	}
	parts := make([]string, len(o.flags))
	for i, f := range o.flags {
		parts[i] = f + " " + o.meta()
	}
	return strings.Join(parts, ", ")
}

type command struct {
	name string
	help string
	p    *parser
}

type parser struct {
	prog        string
	description string
	opts        []*option
	commands    []*command // sub-commands (main parser only)
	cmdTitle    string
	cmdDesc     string
	cmdHelp     string
	version     string
}

func newParser(prog, description string) *parser {
	p := &parser{prog: prog, description: description}
	p.add(&option{flags: []string{"-h", "--help"}, dest: "help", kind: kindHelp, help: "show this help message and exit"})
	return p
}

func (p *parser) add(o *option) *option {
	if o.dest == "" {
		o.dest = strings.ReplaceAll(strings.TrimLeft(o.flags[len(o.flags)-1], "-"), "-", "_")
	}
	p.opts = append(p.opts, o)
	return o
}

func (p *parser) addCommand(name, help string) *parser {
	sp := newParser(p.prog+" "+name, "")
	p.commands = append(p.commands, &command{name: name, help: help, p: sp})
	return sp
}

func (p *parser) commandNames() []string {
	out := make([]string, len(p.commands))
	for i, c := range p.commands {
		out[i] = c.name
	}
	return out
}

// usage returns "usage: ...\n" wrapped like argparse.
func (p *parser) usage() string {
	var optParts, posParts []string
	for _, o := range p.opts {
		if o.positional() {
			posParts = append(posParts, o.usagePart())
		} else {
			optParts = append(optParts, o.usagePart())
		}
	}
	if len(p.commands) > 0 {
		posParts = append(posParts, "{"+strings.Join(p.commandNames(), ",")+"}", "...")
	}
	prefix := "usage: "
	all := append(append([]string{p.prog}, optParts...), posParts...)
	line := strings.Join(all, " ")
	if len(prefix)+len(line) <= helpWidth {
		return prefix + line + "\n"
	}
	getLines := func(parts []string, indent string, withPrefix bool) []string {
		var lines, cur []string
		lineLen := len(indent) - 1
		if withPrefix {
			lineLen = len(prefix) - 1
		}
		for _, part := range parts {
			if lineLen+1+len(part) > helpWidth && len(cur) > 0 {
				lines = append(lines, indent+strings.Join(cur, " "))
				cur = nil
				lineLen = len(indent) - 1
			}
			cur = append(cur, part)
			lineLen += len(part) + 1
		}
		if len(cur) > 0 {
			lines = append(lines, indent+strings.Join(cur, " "))
		}
		if withPrefix && len(lines) > 0 {
			lines[0] = lines[0][len(indent):]
		}
		return lines
	}
	var lines []string
	if float64(len(prefix)+len(p.prog)) <= 0.75*helpWidth {
		indent := strings.Repeat(" ", len(prefix)+len(p.prog)+1)
		if len(optParts) > 0 {
			lines = getLines(append([]string{p.prog}, optParts...), indent, true)
			lines = append(lines, getLines(posParts, indent, false)...)
		} else {
			lines = getLines(append([]string{p.prog}, posParts...), indent, true)
		}
	} else {
		indent := strings.Repeat(" ", len(prefix))
		lines = []string{p.prog}
		lines = append(lines, getLines(optParts, indent, false)...)
		lines = append(lines, getLines(posParts, indent, false)...)
	}
	return prefix + strings.Join(lines, "\n") + "\n"
}

type helpItem struct {
	invocation string
	help       string
	indent     int
}

// help returns the full help text like argparse's format_help.
func (p *parser) help() string {
	var b strings.Builder
	b.WriteString(p.usage())
	if p.description != "" {
		b.WriteString("\n" + p.description + "\n")
	}
	var pos, opt, cmds []helpItem
	for _, o := range p.opts {
		it := helpItem{o.invocation(), o.help, 2}
		if o.positional() {
			pos = append(pos, it)
		} else {
			opt = append(opt, it)
		}
	}
	if len(p.commands) > 0 {
		cmds = append(cmds, helpItem{"{" + strings.Join(p.commandNames(), ",") + "}", p.cmdHelp, 2})
		for _, c := range p.commands {
			cmds = append(cmds, helpItem{c.name, c.help, 4})
		}
	}
	maxLen := 0
	for _, group := range [][]helpItem{pos, opt, cmds} {
		for _, it := range group {
			if l := len(it.invocation) + it.indent; l > maxLen {
				maxLen = l
			}
		}
	}
	helpPos := maxLen + 2
	if helpPos > maxHelpPosition {
		helpPos = maxHelpPosition
	}
	section := func(title, desc string, items []helpItem) {
		if len(items) == 0 {
			return
		}
		b.WriteString("\n" + title + ":\n")
		if desc != "" {
			b.WriteString("  " + desc + "\n\n")
		}
		for _, it := range items {
			b.WriteString(formatItem(it, helpPos))
		}
	}
	section("positional arguments", "", pos)
	section("options", "", opt)
	section(p.cmdTitle, p.cmdDesc, cmds)
	return b.String()
}

func formatItem(it helpItem, helpPos int) string {
	actionWidth := helpPos - it.indent - 2
	inv := strings.Repeat(" ", it.indent) + it.invocation
	if it.help == "" {
		return inv + "\n"
	}
	lines := wrap(it.help, max(helpWidth-helpPos, 11))
	var b strings.Builder
	if len(it.invocation) <= actionWidth {
		b.WriteString(inv + strings.Repeat(" ", actionWidth-len(it.invocation)) + "  " + lines[0] + "\n")
		lines = lines[1:]
	} else {
		b.WriteString(inv + "\n")
	}
	for _, l := range lines {
		b.WriteString(strings.Repeat(" ", helpPos) + l + "\n")
	}
	return b.String()
}

// wrap is a greedy word wrap like Python's textwrap.wrap.
func wrap(s string, width int) []string {
	var lines []string
	cur := ""
	for _, w := range strings.Fields(s) {
		if cur == "" {
			cur = w
		} else if len(cur)+1+len(w) <= width {
			cur += " " + w
		} else {
			lines = append(lines, cur)
			cur = w
		}
	}
	return append(lines, cur)
}

// argError is an argparse-style usage error of parser p (exit 2).
type argError struct {
	p   *parser
	msg string
}

func (e *argError) Error() string { return e.msg }

func (e *argError) print(w io.Writer) {
	fmt.Fprint(w, e.p.usage())
	fmt.Fprintf(w, "%s: error: %s\n", e.p.prog, e.msg)
}

// exitRequest is -h or --version: print text to stdout and exit 0.
type exitRequest struct{ text string }

func (e *exitRequest) Error() string { return "exit" }

// args are the parsed values of one parser.
type args struct {
	values  map[string]string
	set     map[string]bool
	command string
	sub     *args
}

func (a *args) get(dest string) string { return a.values[dest] }
func (a *args) flag(dest string) bool  { return a.values[dest] == "true" }

// parse parses argv for p; extras collects unrecognized arguments (reported
// by the top-level parser).
func (p *parser) parse(argv []string, extras *[]string) (*args, error) {
	a := &args{values: map[string]string{}, set: map[string]bool{}}
	var positionals []string
	i := 0
	dashdash := false
	for i < len(argv) {
		s := argv[i]
		i++
		if !dashdash && s == "--" {
			dashdash = true
			continue
		}
		if dashdash || !strings.HasPrefix(s, "-") || s == "-" {
			if len(p.commands) > 0 {
				return p.dispatch(a, s, argv[i:], extras)
			}
			positionals = append(positionals, s)
			continue
		}
		o, value, hasValue, err := p.lookup(s)
		if err != nil {
			return nil, err
		}
		if o == nil {
			*extras = append(*extras, s)
			continue
		}
		switch o.kind {
		case kindHelp:
			return nil, &exitRequest{p.help()}
		case kindVersion:
			return nil, &exitRequest{p.version + "\n"}
		case kindTrue:
			if hasValue {
				return nil, &argError{p, fmt.Sprintf("argument %s: ignored explicit argument '%s'", strings.Join(o.flags, "/"), value)}
			}
			a.values[o.dest] = "true"
		case kindStore:
			if !hasValue {
				if i >= len(argv) || (strings.HasPrefix(argv[i], "-") && argv[i] != "-") {
					return nil, &argError{p, fmt.Sprintf("argument %s: expected one argument", strings.Join(o.flags, "/"))}
				}
				value = argv[i]
				i++
			}
			if err := checkChoice(p, o, value); err != nil {
				return nil, err
			}
			a.values[o.dest] = value
		}
		a.set[o.dest] = true
	}
	// Assign positionals in order.
	var missing []string
	for _, o := range p.opts {
		if !o.positional() {
			continue
		}
		if len(positionals) > 0 {
			a.values[o.dest] = positionals[0]
			a.set[o.dest] = true
			positionals = positionals[1:]
		}
	}
	*extras = append(*extras, positionals...)
	for _, o := range p.opts {
		if a.set[o.dest] {
			continue
		}
		if o.required || (o.positional() && !o.optional) {
			if o.positional() {
				missing = append(missing, o.meta())
			} else {
				missing = append(missing, strings.Join(o.flags, "/"))
			}
		}
	}
	if len(missing) > 0 {
		return nil, &argError{p, "the following arguments are required: " + strings.Join(missing, ", ")}
	}
	return a, nil
}

func (p *parser) dispatch(a *args, name string, rest []string, extras *[]string) (*args, error) {
	for _, c := range p.commands {
		if c.name == name {
			sub, err := c.p.parse(rest, extras)
			if err != nil {
				return nil, err
			}
			a.command = name
			a.sub = sub
			return a, nil
		}
	}
	quoted := make([]string, len(p.commands))
	for i, c := range p.commands {
		quoted[i] = "'" + c.name + "'"
	}
	return nil, &argError{p, fmt.Sprintf("argument command: invalid choice: '%s' (choose from %s)", name, strings.Join(quoted, ", "))}
}

func checkChoice(p *parser, o *option, v string) error {
	if o.choices == nil {
		return nil
	}
	for _, c := range o.choices {
		if c == v {
			return nil
		}
	}
	quoted := make([]string, len(o.choices))
	for i, c := range o.choices {
		quoted[i] = "'" + c + "'"
	}
	return &argError{p, fmt.Sprintf("argument %s: invalid choice: '%s' (choose from %s)", strings.Join(o.flags, "/"), v, strings.Join(quoted, ", "))}
}

// lookup resolves an option string: exact flags, "--flag=value", "-xVALUE"
// and unique prefixes of long options (argparse's allow_abbrev).
func (p *parser) lookup(s string) (*option, string, bool, error) {
	name, value, hasValue := s, "", false
	if strings.HasPrefix(s, "--") {
		if n, v, ok := strings.Cut(s, "="); ok {
			name, value, hasValue = n, v, true
		}
	}
	for _, o := range p.opts {
		for _, f := range o.flags {
			if f == name {
				return o, value, hasValue, nil
			}
		}
	}
	if !strings.HasPrefix(s, "--") && len(s) > 2 {
		for _, o := range p.opts {
			for _, f := range o.flags {
				if len(f) == 2 && f == s[:2] {
					if o.kind == kindStore {
						return o, s[2:], true, nil
					}
				}
			}
		}
		return nil, "", false, nil
	}
	if strings.HasPrefix(name, "--") {
		var matches []*option
		var names []string
		for _, o := range p.opts {
			for _, f := range o.flags {
				if strings.HasPrefix(f, "--") && strings.HasPrefix(f, name) {
					matches = append(matches, o)
					names = append(names, f)
				}
			}
		}
		if len(matches) == 1 {
			return matches[0], value, hasValue, nil
		}
		if len(matches) > 1 {
			return nil, "", false, &argError{p, fmt.Sprintf("ambiguous option: %s could match %s", name, strings.Join(names, ", "))}
		}
	}
	return nil, "", false, nil
}
