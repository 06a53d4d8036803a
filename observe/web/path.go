package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/shipkit/shipkit/observe"
)

// step is one element of a path: a key of an object or an index of an array.
type step struct {
	key   string
	index int // used when isKey is false
	isKey bool
}

// String writes the step as it appears in a path.
func (s step) String() string {
	if s.isKey {
		return "." + s.key
	}
	return "[" + strconv.Itoa(s.index) + "]"
}

// Path picks one number out of a JSON document. It is a small subset of JSONPath:
// "$" (optional) followed by ".key", `["key"]` (for keys with dots or spaces) and
// "[index]" steps, e.g. "$.data.result[0].value[1]".
type Path struct {
	text  string
	steps []step
}

// ParsePath parses a path such as "$.data.result[0].value[1]" or "status.successRate".
func ParsePath(text string) (Path, error) {
	p := Path{text: text}
	s := strings.TrimSpace(text)
	if rest, ok := strings.CutPrefix(s, "$"); ok {
		s = rest
	} else if s != "" && s[0] != '.' && s[0] != '[' {
		s = "." + s // "a.b" is "$.a.b"
	}
	for s != "" {
		switch s[0] {
		case '.':
			end := strings.IndexAny(s[1:], ".[")
			if end < 0 {
				end = len(s) - 1
			}
			key := s[1 : 1+end]
			if key == "" {
				return Path{}, fmt.Errorf("web: path %q: empty key", text)
			}
			p.steps = append(p.steps, step{key: key, isKey: true})
			s = s[1+end:]
		case '[':
			end := strings.IndexByte(s, ']')
			if end < 0 {
				return Path{}, fmt.Errorf("web: path %q: unclosed [", text)
			}
			inner := strings.TrimSpace(s[1:end])
			if inner != "" && (inner[0] == '"' || inner[0] == '\'') {
				// A quoted key may hold "]": find its closing quote first.
				open := strings.IndexByte(s, inner[0])
				closing := strings.IndexByte(s[open+1:], inner[0])
				if closing < 0 {
					return Path{}, fmt.Errorf("web: path %q: unclosed quote", text)
				}
				key := s[open+1 : open+1+closing]
				rest := strings.TrimSpace(s[open+1+closing+1:])
				if !strings.HasPrefix(rest, "]") {
					return Path{}, fmt.Errorf("web: path %q: want ] after the quoted key %q", text, key)
				}
				p.steps = append(p.steps, step{key: key, isKey: true})
				s = rest[1:]
				continue
			}
			i, err := strconv.Atoi(inner)
			if err != nil || i < 0 {
				return Path{}, fmt.Errorf("web: path %q: index %q: want a number ≥ 0 or a quoted key", text, inner)
			}
			p.steps = append(p.steps, step{index: i})
			s = s[end+1:]
		default:
			return Path{}, fmt.Errorf("web: path %q: unexpected %q: want . or [", text, s[:1])
		}
	}
	return p, nil
}

// String returns the path as it was written.
func (p Path) String() string { return p.text }

// Number returns the number at the path in doc (decoded with json.Decoder.UseNumber):
// a JSON number, or a string holding one as Prometheus writes them ("0.99", "NaN").
// A missing key, an index past the end of an array or a null value wraps
// [observe.ErrNoData].
func (p Path) Number(doc any) (float64, error) {
	v := doc
	for i, s := range p.steps {
		at := "$"
		for _, prev := range p.steps[:i] {
			at += prev.String()
		}
		switch node := v.(type) {
		case map[string]any:
			if !s.isKey {
				return 0, fmt.Errorf("%s is an object, not an array to index with %s", at, s)
			}
			next, ok := node[s.key]
			if !ok {
				return 0, fmt.Errorf("%w: %s has no key %q", observe.ErrNoData, at, s.key)
			}
			v = next
		case []any:
			if s.isKey {
				return 0, fmt.Errorf("%s is an array, not an object with key %q", at, s.key)
			}
			if s.index >= len(node) {
				return 0, fmt.Errorf("%w: %s has %d elements, no index %d", observe.ErrNoData, at, len(node), s.index)
			}
			v = node[s.index]
		case nil:
			return 0, fmt.Errorf("%w: %s is null", observe.ErrNoData, at)
		default:
			return 0, fmt.Errorf("%s is %s, not an object or array", at, kind(node))
		}
	}
	switch v := v.(type) {
	case json.Number:
		return strconv.ParseFloat(string(v), 64)
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return 0, fmt.Errorf("%s is the string %q, not a number", p.text, truncate(v, 40))
		}
		return f, nil
	case nil:
		return math.NaN(), fmt.Errorf("%w: %s is null", observe.ErrNoData, p.text)
	}
	return 0, errors.New(p.text + " is " + kind(v) + ", not a number")
}

// kind names the JSON type of a decoded value.
func kind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	}
	return "null"
}

// truncate shortens s to n bytes at most, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
