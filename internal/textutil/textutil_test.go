package textutil

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestQuote(t *testing.T) {
	if got := Quote("a\"b"); got != `"a\"b"` {
		t.Fatalf("Quote short = %s", got)
	}
	long := strings.Repeat("/ws", 33_000)
	got := Quote(long)
	if !strings.HasPrefix(got, `"/ws/ws`) || !strings.HasSuffix(got, "… (99000 bytes)") || len(got) > MaxQuoted+30 {
		t.Fatalf("Quote long = %s", got)
	}
	// cut at a character boundary
	got = Quote(strings.Repeat("é", 150))
	if strings.Contains(got, `\x`) || !strings.HasSuffix(got, "… (300 bytes)") {
		t.Fatalf("Quote cut a character: %s", got)
	}
}

func TestClip(t *testing.T) {
	if got := Clip("one\ntwo\r\nthree", 100); got != "one; two; three" {
		t.Fatalf("Clip = %q", got)
	}
	got := Clip(strings.Repeat("x", 1000), 300)
	if len(got) > 320 || !strings.HasSuffix(got, "… (1000 bytes)") {
		t.Fatalf("Clip long = %q", got)
	}
}

func TestPrintable(t *testing.T) {
	const bad = "\uFFFD"
	for in, want := range map[string]string{
		"plain text, ünïcödé 日本":      "plain text, ünïcödé 日本",
		"tab\tstays":                  "tab\tstays",
		"\x1b[2Jclear":                bad + "[2Jclear",
		"bell\a nul\x00 del\x7f":      "bell" + bad + " nul" + bad + " del" + bad,
		"c1\u009b31m":                 "c1" + bad + "31m",
		"line\nbreak\r":               "line" + bad + "break" + bad,
		"evil\u202Etxt.exe\u202C":     "evil" + bad + "txt.exe" + bad,
		"\u202A\u202B\u202D":          bad + bad + bad,
		"\u2066iso\u2067\u2068\u2069": bad + "iso" + bad + bad + bad,
		"zero\u200Bwidth\u200C\u200D\u200E\u200F\uFEFF\u2060": "zero" + bad + "width" + strings.Repeat(bad, 6),
		"sep\u2028\u2029":   "sep" + bad + bad,
		"bad utf8 \xff\xfe": "bad utf8 " + bad,
	} {
		got := Printable(in)
		if got != want {
			t.Errorf("Printable(%q) = %q, want %q", in, got, want)
		}
		if !utf8.ValidString(got) {
			t.Errorf("Printable(%q) is not valid UTF-8", in)
		}
	}
}

func TestErrLine(t *testing.T) {
	if got := ErrLine(nil); got != "" {
		t.Errorf("ErrLine(nil) = %q, want empty", got)
	}
	joined := errors.Join(errors.New("a"), errors.New("b"))
	if got := ErrLine(joined); got != "a; b" {
		t.Errorf("ErrLine(joined) = %q, want one line %q", got, "a; b")
	}
	if got := ErrLine(errors.New(strings.Repeat("x", 5000))); len(got) > 1100 || !strings.HasSuffix(got, "(5000 bytes)") {
		t.Errorf("ErrLine of a 5000-byte error = %d bytes, want it clipped to about 1 KiB", len(got))
	}
}
