package main

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	frames := []frame{
		{Type: frameHello, Session: "s1", Version: protocolVersion},
		{Type: frameMsg, Session: "s1", Seq: 1, Time: 1700000000123, Text: "hello\nworld \"quoted\" ✓"},
		{Type: frameMsg, Session: "s1", Seq: 2, Text: strings.Repeat("\x01", maxTextBytes)}, // worst-case escaping
		{Type: frameAck, Session: "s1", Seq: 2},
		{Type: "future", Text: "ignored by this version"},
	}
	var buf bytes.Buffer
	for _, f := range frames {
		if err := writeFrame(&buf, f); err != nil {
			t.Fatalf("writeFrame(%+v): %v", f.Type, err)
		}
	}
	r := newFrameReader(&buf)
	for i, want := range frames {
		got, err := r.next()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if got != want {
			t.Fatalf("frame %d: got %+v, want %+v", i, got, want)
		}
	}
	if _, err := r.next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
}

func TestFrameValidate(t *testing.T) {
	long := strings.Repeat("s", maxSessionBytes+1)
	for _, tc := range []struct {
		name string
		f    frame
		want string // "" = valid
	}{
		{"hello", frame{Type: frameHello, Session: "s", Version: 1}, ""},
		{"newer hello", frame{Type: frameHello, Session: "s", Version: 7}, ""},
		{"unknown type", frame{Type: "typing"}, ""},
		{"empty type", frame{Session: "s"}, "type is empty"},
		{"hello no session", frame{Type: frameHello, Version: 1}, "session must be"},
		{"hello long session", frame{Type: frameHello, Session: long, Version: 1}, "session must be"},
		{"hello no version", frame{Type: frameHello, Session: "s"}, "version must be >= 1"},
		{"msg seq 0", frame{Type: frameMsg, Session: "s", Text: "x"}, "seq must be >= 1"},
		{"ack seq 0", frame{Type: frameAck, Session: "s"}, "seq must be >= 1"},
		{"msg too long", frame{Type: frameMsg, Session: "s", Seq: 1, Text: strings.Repeat("x", maxTextBytes+1)}, "text is"},
		{"msg empty text", frame{Type: frameMsg, Session: "s", Seq: 1}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.f.validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("validate: %v, want valid", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, errBadFrame)):
				t.Fatalf("validate: %v, want an errBadFrame containing %q", err, tc.want)
			}
			if tc.want != "" {
				if err := writeFrame(io.Discard, tc.f); err == nil {
					t.Fatal("writeFrame wrote an invalid frame")
				}
			}
		})
	}
}

func TestFrameReaderErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     error
	}{
		{"not json", "hello\n", errBadFrame},
		{"invalid frame", `{"type":"msg","session":"s","seq":0}` + "\n", errBadFrame},
		{"wrong field type", `{"type":"msg","session":"s","seq":"one"}` + "\n", errBadFrame},
		{"too long", strings.Repeat("x", maxFrameBytes+10) + "\n", errFrameTooLong},
		{"blank lines then EOF", "\n\n\n", io.EOF},
		{"empty", "", io.EOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newFrameReader(strings.NewReader(tc.in)).next()
			if !errors.Is(err, tc.want) {
				t.Fatalf("next: %v, want %v", err, tc.want)
			}
		})
	}
	// A frame without a final newline is still a frame.
	f, err := newFrameReader(strings.NewReader(`{"type":"ack","session":"s","seq":3}`)).next()
	if err != nil || f.Seq != 3 {
		t.Fatalf("unterminated frame: %+v, %v", f, err)
	}
}

func FuzzFrameReader(f *testing.F) {
	f.Add([]byte(`{"type":"msg","session":"abc","seq":1,"time":5,"text":"hi"}` + "\n"))
	f.Add([]byte(`{"type":"ack","session":"abc","seq":18446744073709551615}`))
	f.Add([]byte("{}\n\n{\"type\":\"hello\",\"session\":\"x\",\"version\":1}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := newFrameReader(bytes.NewReader(data))
		for range 100 {
			fr, err := r.next()
			if err != nil {
				return
			}
			if err := fr.validate(); err != nil {
				t.Fatalf("next returned an invalid frame %+v: %v", fr, err)
			}
			var buf bytes.Buffer
			if err := writeFrame(&buf, fr); err != nil {
				t.Fatalf("cannot re-encode %+v: %v", fr, err)
			}
			back, err := newFrameReader(&buf).next()
			if err != nil || back != fr {
				t.Fatalf("re-encoded frame differs: %+v vs %+v (%v)", back, fr, err)
			}
		}
	})
}
