package vulndb

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/semver"
)

// ErrGoRange is the error [WriteGo] wraps when a Go record's version range has
// no exact equivalent in govulncheck's format, whose ranges are only
// introduced/fixed SEMVER events over Go's semantic versions: a version that is
// not a semantic version, or a bound other than >=, >, <, <= and =.
var ErrGoRange = errors.New("version range not expressible as Go vulnerability DB SEMVER events")

// semverEvents turns a grype constraint ("< 1.2", ">= 1.0, < 1.2", ">= 1.0",
// "<= 1.2" as [FromOSV] writes last_affected, several joined with "||", empty
// for every version) into OSV SEMVER events, one event list per alternative, as
// govulncheck reads them: a half-open interval [introduced, fixed).
//
// An inclusive upper bound "<= v" becomes fixed at the successor of v, the least
// semantic version greater than v (see semverSuccessor), and an exclusive lower
// bound "> v" becomes introduced at it, so the interval holds exactly the same
// versions under Go's ordering (golang.org/x/mod/semver, govulncheck's own); "= v"
// is [v, successor of v). An alternative that holds no version is left out.
func semverEvents(constraint string) ([][]goRangeEvent, error) {
	var out [][]goRangeEvent
	for _, alt := range strings.Split(constraint, "||") {
		lower, upper := "", "" // "" for no bound
		raise := func(v string) {
			if lower == "" || semver.Compare("v"+v, "v"+lower) > 0 {
				lower = v
			}
		}
		cut := func(v string) {
			if upper == "" || semver.Compare("v"+v, "v"+upper) < 0 {
				upper = v
			}
		}
		for _, term := range strings.Split(alt, ",") {
			term = strings.TrimSpace(term)
			if term == "" {
				continue
			}
			op := term
			if i := strings.IndexFunc(term, func(r rune) bool { return !strings.ContainsRune("<>=!~^", r) }); i >= 0 {
				op = term[:i]
			}
			v, err := goSemver(strings.TrimSpace(term[len(op):]))
			if err != nil {
				return nil, fmt.Errorf("%w: %q in %q: %w", ErrGoRange, term, constraint, err)
			}
			switch op {
			case ">=":
				raise(v)
			case "<":
				cut(v)
			case ">", "<=", "=":
				next, err := semverSuccessor(v)
				if err != nil {
					return nil, fmt.Errorf("%w: %q in %q: %w", ErrGoRange, term, constraint, err)
				}
				switch op {
				case ">":
					raise(next)
				case "<=":
					cut(next)
				default:
					raise(v)
					cut(next)
				}
			default:
				return nil, fmt.Errorf("%w: %q in %q: want >=, >, <, <= or =", ErrGoRange, term, constraint)
			}
		}
		if lower != "" && upper != "" && semver.Compare("v"+lower, "v"+upper) >= 0 {
			continue // no version is in it
		}
		ev := []goRangeEvent{{Introduced: "0"}}
		if lower != "" {
			ev[0].Introduced = lower
		}
		if upper != "" {
			ev = append(ev, goRangeEvent{Fixed: upper})
		}
		out = append(out, ev)
	}
	return out, nil
}

// goSemver is v without its "v" prefix, when it is a semantic version as Go
// reads them.
func goSemver(v string) (string, error) {
	v = strings.TrimPrefix(v, "v")
	if v == "" || !semver.IsValid("v"+v) {
		return "", fmt.Errorf("%q is not a semantic version", v)
	}
	return v, nil
}

// semverSuccessor is the least semantic version greater than v (given without
// its "v"): for a release X.Y.Z it is X.Y.(Z+1)-0, the first pre-release of the
// next patch (nothing sorts between: X.Y.Z's pre-releases sort before it, and "0"
// is the least pre-release identifier); for a pre-release X.Y.Z-p it is
// X.Y.Z-p.0 (a longer pre-release with the same fields sorts after, and "0" is
// the least field to add). Build metadata is ignored in Go's ordering, so it is
// dropped.
func semverSuccessor(v string) (string, error) {
	c := strings.TrimPrefix(semver.Canonical("v"+v), "v")
	if c == "" {
		return "", fmt.Errorf("%q is not a semantic version", v)
	}
	if strings.Contains(c, "-") {
		return c + ".0", nil
	}
	parts := strings.Split(c, ".")
	patch, err := strconv.ParseUint(parts[2], 10, 64)
	if err != nil || patch == ^uint64(0) {
		return "", fmt.Errorf("version %q: patch %q has no successor", v, parts[2])
	}
	return fmt.Sprintf("%s.%s.%d-0", parts[0], parts[1], patch+1), nil
}
