package cli

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// result is the outcome of a command. Its JSON form (struct tags) is the
// contract of --json; printHuman writes the human form: data to out, hints
// to note.
type result interface {
	printHuman(out, note io.Writer) error
}

// printer renders every result of a command, as JSON or for humans.
type printer interface {
	print(r result) error
}

// jsonPrinter writes each result as one JSON document.
type jsonPrinter struct{ w io.Writer }

func (p jsonPrinter) print(r result) error {
	enc := json.NewEncoder(p.w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// stickyPrintf returns a printf to out that does nothing after the first
// write error, and where that error is kept: for human output written
// piece by piece.
func stickyPrintf(out io.Writer) (printf func(format string, args ...any), err *error) {
	err = new(error)
	printf = func(format string, args ...any) {
		if *err == nil {
			_, *err = fmt.Fprintf(out, format, args...)
		}
	}
	return printf, err
}

// humanPrinter writes the human form of each result.
type humanPrinter struct{ out, note io.Writer }

func (p humanPrinter) print(r result) error { return r.printHuman(p.out, p.note) }

// bytesJSON is a byte value in JSON: a string when it is valid UTF-8,
// otherwise {"base64": "..."}.
type bytesJSON []byte

// MarshalJSON implements json.Marshaler.
func (b bytesJSON) MarshalJSON() ([]byte, error) {
	if utf8.Valid(b) {
		return json.Marshal(string(b))
	}
	return json.Marshal(struct {
		Base64 string `json:"base64"`
	}{base64.StdEncoding.EncodeToString(b)})
}

// valueJSON returns b as a non-nil *bytesJSON: present, possibly empty.
func valueJSON(b []byte) *bytesJSON {
	v := bytesJSON(b)
	return &v
}

// humanMaxValue is the longest value shown in listings before truncation.
const humanMaxValue = 60

// display renders b on one line for humans: as is when it is printable
// UTF-8, Go-quoted otherwise. max > 0 truncates to that many characters
// followed by "...".
func display(b []byte, max int) string {
	s := string(b)
	if !printable(s) {
		s = strconv.Quote(s)
	}
	if max > 0 && utf8.RuneCountInString(s) > max {
		r := []rune(s)
		s = string(r[:max]) + "..."
	}
	return s
}

// printable reports whether s is valid UTF-8 without control characters.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) && r != ' ' {
			return false
		}
	}
	return true
}
