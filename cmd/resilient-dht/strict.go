package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"

	"github.com/chiral-network/go-libp2p-resilience/internal/textutil"
)

// maxConfigDepth bounds the nesting of the config file: its deepest field is
// retry.dht_peer.<field>, three levels down.
const maxConfigDepth = 8

// checkStrictJSON refuses what encoding/json accepts silently, naming the
// field: a key given twice in one object (json keeps the last), null where a
// value is needed (json leaves the default; no config field takes null),
// anything after the top-level value, and nesting deeper than maxConfigDepth.
// Syntax errors are returned as the decoder reports them.
func checkStrictJSON(data []byte) error {
	type level struct {
		object  bool
		path    string
		keys    map[string]struct{}
		key     string // object: the key whose value comes next
		wantKey bool   // object: a key (or '}') comes next
		index   int    // array: the index of the next element
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var stack []*level
	// valuePath names the value the next token starts.
	valuePath := func() string {
		if len(stack) == 0 {
			return "the config"
		}
		top := stack[len(stack)-1]
		if top.object {
			return joinField(top.path, top.key)
		}
		return fmt.Sprintf("%s[%d]", top.path, top.index)
	}
	// valueDone moves past a complete value.
	valueDone := func() {
		if len(stack) == 0 {
			return
		}
		if top := stack[len(stack)-1]; top.object {
			top.wantKey = true
		} else {
			top.index++
		}
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return errors.New("empty: want a JSON object")
			}
			return err
		}
		if len(stack) > 0 && stack[len(stack)-1].object && stack[len(stack)-1].wantKey {
			top := stack[len(stack)-1]
			if tok == json.Delim('}') {
				stack = stack[:len(stack)-1]
				valueDone()
			} else {
				key, _ := tok.(string) // the decoder allows only strings here
				if _, dup := top.keys[key]; dup {
					return fmt.Errorf("%s: given twice", textutil.Clip(joinField(top.path, key), textutil.MaxQuoted))
				}
				top.keys[key] = struct{}{}
				top.key, top.wantKey = key, false
			}
		} else {
			switch tok {
			case json.Delim('{'), json.Delim('['):
				if len(stack) == maxConfigDepth {
					return fmt.Errorf("%s: nested deeper than %d levels", textutil.Clip(valuePath(), textutil.MaxQuoted), maxConfigDepth)
				}
				obj := tok == json.Delim('{')
				stack = append(stack, &level{object: obj, path: valuePath(), keys: map[string]struct{}{}, wantKey: obj})
				continue
			case json.Delim(']'):
				stack = stack[:len(stack)-1]
			case nil:
				return fmt.Errorf("%s: null where a value is needed", textutil.Clip(valuePath(), textutil.MaxQuoted))
			}
			valueDone()
		}
		if len(stack) == 0 { // the top-level value is complete
			if rest := bytes.TrimSpace(data[dec.InputOffset():]); len(rest) > 0 {
				return fmt.Errorf("trailing data after the JSON object at byte %d: %s", dec.InputOffset(), textutil.Quote(string(rest[:min(len(rest), 20)])))
			}
			return nil
		}
	}
}

func joinField(path, key string) string {
	if path == "" || path == "the config" {
		return key
	}
	return path + "." + key
}

// decimalInt is an int flag that takes decimal digits only, with an optional
// sign: flag.IntVar also reads 0x10, 0o20, 0b10000 and 1_6 as 16.
type decimalInt struct{ p *int }

func (d decimalInt) String() string {
	if d.p == nil {
		return "0"
	}
	return strconv.Itoa(*d.p)
}

func (d decimalInt) Set(s string) error {
	v, err := strconv.ParseInt(s, 10, strconv.IntSize)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return errors.New("out of range")
		}
		return errors.New("not a decimal integer")
	}
	*d.p = int(v)
	return nil
}

// decimalIntFlag defines a decimalInt flag on fs, like fs.Int.
func decimalIntFlag(fs *flag.FlagSet, name string, value int, usage string) *int {
	p := new(int)
	*p = value
	fs.Var(decimalInt{p}, name, usage)
	return p
}
