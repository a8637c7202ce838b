// Package textutil makes untrusted text safe to show: in an error message
// (Quote, Clip: bounded, so a 100 MB value cannot become a 100 MB "line") and on
// a terminal (Printable: no escape sequences, no bidi overrides, no invisible
// characters). The functions are safe for concurrent use.
package textutil

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxQuoted is how many bytes of a value Quote shows.
const MaxQuoted = 200

// Quote returns s quoted as with %q. A value longer than MaxQuoted bytes is cut
// there (at a character boundary) and followed by its full length, as in
// "/ws/ws/ws"… (100000 bytes).
func Quote(s string) string {
	if len(s) <= MaxQuoted {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("%s… (%d bytes)", strconv.Quote(cut(s, MaxQuoted)), len(s))
}

// Clip returns s cut to at most max bytes (at a character boundary) with
// "… (N bytes)" appended when it was longer, and with line breaks replaced by
// "; " so that it stays one line. For messages built by other code (a JSON
// decoder's error) that may quote a long value.
func Clip(s string, max int) string {
	s = strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "; "), "\n", "; ")
	if len(s) <= max {
		return s
	}
	return fmt.Sprintf("%s… (%d bytes)", cut(s, max), len(s))
}

// ErrLine is err's text for a log line: Clip'ed to 1 KiB, on one line (a
// joined error spans several), or "" for nil.
func ErrLine(err error) string {
	if err == nil {
		return ""
	}
	return Clip(err.Error(), 1024)
}

func cut(s string, max int) string {
	i := max
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}

// Printable returns s with every character that could mislead or control a
// terminal replaced by U+FFFD: control characters other than tab (so an escape
// sequence like ESC [2J loses its ESC and shows as text), the bidi embeddings,
// overrides and isolates (U+202A–U+202E, U+2066–U+2069) and marks (U+200E,
// U+200F, U+061C), zero-width characters (U+200B–U+200D, U+2060, U+FEFF), the
// line and paragraph separators (U+2028, U+2029), and invalid UTF-8.
func Printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\t' || !unsafeRune(r) {
			return r
		}
		return utf8.RuneError
	}, strings.ToValidUTF8(s, string(utf8.RuneError)))
}

func unsafeRune(r rune) bool {
	switch {
	case unicode.IsControl(r): // C0, DEL, C1
		return true
	case r >= 0x200B && r <= 0x200F, // zero-width space, non-joiner, joiner; LRM, RLM
		r >= 0x202A && r <= 0x202E, // LRE, RLE, PDF, LRO, RLO
		r >= 0x2066 && r <= 0x2069, // LRI, RLI, FSI, PDI
		r == 0x061C,                // Arabic letter mark
		r == 0x2060, r == 0xFEFF,   // word joiner, zero-width no-break space (BOM)
		r == 0x2028, r == 0x2029: // line, paragraph separator
		return true
	}
	return false
}
