// Package table renders tables byte-for-byte like PrettyTable 0.7 with all
// columns left-aligned and formats ages.
package table

import (
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"
	"unicode"
)

// Render returns the table for headers and rows, lines joined with "\n"
// and without a trailing newline. Rows shorter than headers are padded
// with empty cells; extra cells are ignored.
func Render(headers []string, rows [][]string) string {
	widths := make([]int, len(headers))
	for i, h := range headers {
		widths[i] = blockWidth(h)
	}
	for _, r := range rows {
		for i := range headers {
			if i < len(r) && blockWidth(r[i]) > widths[i] {
				widths[i] = blockWidth(r[i])
			}
		}
	}
	var b strings.Builder
	rule := hrule(widths)
	b.WriteString(rule)
	b.WriteByte('\n')
	writeRow(&b, headers, widths)
	b.WriteByte('\n')
	b.WriteString(rule)
	for _, r := range rows {
		b.WriteByte('\n')
		writeRow(&b, r, widths)
	}
	b.WriteByte('\n')
	b.WriteString(rule)
	return b.String()
}

func hrule(widths []int) string {
	var b strings.Builder
	b.WriteByte('+')
	for _, w := range widths {
		b.WriteString(strings.Repeat("-", w+2))
		b.WriteByte('+')
	}
	return b.String()
}

// writeRow writes one logical row, which spans as many physical lines as
// its tallest cell; shorter cells are padded with blank lines at the bottom.
func writeRow(b *strings.Builder, cells []string, widths []int) {
	lines := make([][]string, len(widths))
	height := 1
	for i := range widths {
		c := ""
		if i < len(cells) {
			c = cells[i]
		}
		lines[i] = strings.Split(c, "\n")
		if len(lines[i]) > height {
			height = len(lines[i])
		}
	}
	for y := 0; y < height; y++ {
		if y > 0 {
			b.WriteByte('\n')
		}
		b.WriteByte('|')
		for i, w := range widths {
			l := ""
			if y < len(lines[i]) {
				l = lines[i][y]
			}
			b.WriteByte(' ')
			b.WriteString(l)
			if pad := w - blockWidth(l); pad > 0 {
				b.WriteString(strings.Repeat(" ", pad))
			}
			b.WriteString(" |")
		}
	}
}

var ansiRe = regexp.MustCompile("\033\\[[0-9;]*m")

// Width returns the display width of a (possibly multi-line) cell: the
// width of its longest line.
func Width(s string) int { return blockWidth(s) }

func blockWidth(s string) int {
	w := 0
	for _, line := range strings.Split(s, "\n") {
		if lw := lineWidth(line); lw > w {
			w = lw
		}
	}
	return w
}

// lineWidth is PrettyTable 0.7's _str_block_width: ANSI colour codes are
// ignored, East-Asian wide characters count 2, combining marks 0.
func lineWidth(s string) int {
	s = ansiRe.ReplaceAllString(s, "")
	w := 0
	for _, r := range s {
		w += charWidth(r)
	}
	return w
}

func charWidth(r rune) int {
	switch {
	case r >= 0x21 && r <= 0x7e:
		return 1
	case r >= 0x4e00 && r <= 0x9fff, r >= 0xac00 && r <= 0xd7af:
		return 2
	case unicode.Is(unicode.Mn, r):
		return 0
	case r >= 0x3040 && r <= 0x30ff, r >= 0xff01 && r <= 0xff60, r >= 0x3000 && r <= 0x303e:
		return 2
	case r == 0x08 || r == 0x7f:
		return -1
	case r == 0x00 || r == 0x1f:
		return 0
	}
	return 1
}

// Age formats the time elapsed from the Unix timestamp t (seconds) to now
// as DD:HH:MM:SS with floor division, like nodepool's status.age.
func Age(now time.Time, t float64) string {
	dt := float64(now.UnixNano())/1e9 - t
	m, s := pyDivmod(dt, 60)
	h, m := pyDivmod(m, 60)
	d, h := pyDivmod(h, 24)
	return fmt.Sprintf("%02d:%02d:%02d:%02d", int64(d), int64(h), int64(m), int64(s))
}

// pyDivmod is Python's float divmod (floor division, remainder with the
// sign of the divisor).
func pyDivmod(a, b float64) (float64, float64) {
	q := math.Floor(a / b)
	r := a - q*b
	if r < 0 {
		r += b
		q--
	}
	if r >= b {
		r -= b
		q++
	}
	return q, r
}
