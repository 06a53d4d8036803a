package provider

import (
	"fmt"
	"strconv"
	"strings"
)

// segment is one step of a field path as deploy.FieldDiff writes it:
// spec.template.spec.containers[name=web].image, metadata.labels[app.kubernetes.io/name],
// spec.ports[0].port.
type segment struct {
	text    string // the key, the index or the name
	bracket bool   // written in brackets: a key with dots or slashes, an index or a name
	named   bool   // [name=X]: the list item whose name is X
}

// parsePath splits a FieldDiff path into segments. A bracketed segment ends at the
// "]" that is followed by ".", "[" or the end, so keys may hold "]".
func parsePath(p string) ([]segment, error) {
	var segs []segment
	for i := 0; i < len(p); {
		switch p[i] {
		case '[':
			end := -1
			for j := i + 1; j < len(p); j++ {
				if p[j] == ']' && (j+1 == len(p) || p[j+1] == '.' || p[j+1] == '[') {
					end = j
					break
				}
			}
			if end < 0 {
				return nil, fmt.Errorf("field path %q: unclosed [", p)
			}
			s := segment{text: p[i+1 : end], bracket: true}
			if n, ok := strings.CutPrefix(s.text, "name="); ok {
				s.text, s.named = n, true
			}
			segs = append(segs, s)
			i = end + 1
		default:
			if p[i] == '.' {
				i++
			}
			j := i
			for j < len(p) && p[j] != '.' && p[j] != '[' {
				j++
			}
			if j == i {
				return nil, fmt.Errorf("field path %q: empty key at %d", p, i)
			}
			segs = append(segs, segment{text: p[i:j]})
			i = j
		}
	}
	if len(segs) == 0 {
		return nil, fmt.Errorf("field path %q: empty", p)
	}
	return segs, nil
}

// setPath sets the field at path in obj to v, creating maps and named list items on
// the way; remove deletes the field instead (a field that is not there stays absent).
func setPath(obj map[string]any, path string, v any, remove bool) error {
	segs, err := parsePath(path)
	if err != nil {
		return err
	}
	_, err = setAt(obj, segs, v, remove)
	if err != nil {
		return fmt.Errorf("field path %q: %w", path, err)
	}
	return nil
}

// setAt sets (or removes) the field segs leads to below node and returns the node,
// which is new when node was nil or a list grew.
func setAt(node any, segs []segment, v any, remove bool) (any, error) {
	s, last := segs[0], len(segs) == 1
	if node == nil {
		if remove {
			return nil, nil
		}
		if _, isIndex := index(s); isIndex || s.named {
			node = []any{}
		} else {
			node = map[string]any{}
		}
	}
	switch n := node.(type) {
	case map[string]any:
		child, ok := n[s.text]
		switch {
		case last && remove:
			delete(n, s.text)
		case last:
			n[s.text] = v
		case !ok && remove:
		default:
			c, err := setAt(child, segs[1:], v, remove)
			if err != nil {
				return nil, err
			}
			n[s.text] = c
		}
		return n, nil
	case []any:
		i := -1
		if s.named {
			for j, item := range n {
				if m, ok := item.(map[string]any); ok && m["name"] == s.text {
					i = j
				}
			}
			if i < 0 && !remove {
				n = append(n, map[string]any{"name": s.text})
				i = len(n) - 1
			}
		} else if k, ok := index(s); ok && k < len(n) {
			i = k
		}
		if i < 0 {
			if remove {
				return n, nil
			}
			return nil, fmt.Errorf("no list item %s of %d", s.text, len(n))
		}
		switch {
		case last && remove:
			return append(n[:i:i], n[i+1:]...), nil
		case last:
			n[i] = v
		default:
			c, err := setAt(n[i], segs[1:], v, remove)
			if err != nil {
				return nil, err
			}
			n[i] = c
		}
		return n, nil
	default:
		if remove {
			return node, nil
		}
		return nil, fmt.Errorf("%q is a %T, not a map or list", s.text, node)
	}
}

// index returns the list index of a bracketed number.
func index(s segment) (int, bool) {
	if !s.bracket || s.named {
		return 0, false
	}
	i, err := strconv.Atoi(s.text)
	return i, err == nil && i >= 0
}
