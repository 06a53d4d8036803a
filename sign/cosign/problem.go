package cosign

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/shipkit/shipkit/sign"
)

// problem is a signature or attestation that did not verify, and why. Its message
// is the verifier's own words: nothing the registry served (a response body, a
// payload's bytes) is copied into it, except values checked to be harmless (a
// digest, a predicate type that is a short URI).
type problem struct {
	code sign.ReasonCode
	msg  string
	// deny makes the problem deny the image whatever else verified: the registry
	// served something past the limits, or lied about a size. Other problems are
	// reasons only when the policy fails anyway (signatures and attestations by
	// others are ignored).
	deny bool
}

func denyProblem(code sign.ReasonCode, msg string) *problem {
	return &problem{code: code, msg: msg, deny: true}
}

func (p problem) reason(prefix string) sign.Reason {
	return sign.Reason{Code: p.code, Message: prefix + p.msg}
}

// jsonErrorText describes why JSON did not decode, by position or field, without
// the input's bytes (a syntax error's message quotes the offending character).
func jsonErrorText(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("invalid JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Sprintf("field %s has the wrong type", typ.Field)
		}
		return "wrong JSON type"
	default:
		return "invalid JSON"
	}
}

// safeType returns a predicate type read from an unverified statement if it looks
// like a type URI (printable ASCII, no spaces, at most 200 bytes), a placeholder
// otherwise.
func safeType(s string) string {
	if s == "" {
		return "(no predicate type)"
	}
	if len(s) > 200 {
		return "(an unreadable predicate type)"
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' {
			return "(an unreadable predicate type)"
		}
	}
	return s
}

// safeDigest returns s if it is a digest, "another image" otherwise.
func safeDigest(s string) string {
	if _, err := v1.NewHash(s); err != nil {
		return "another image"
	}
	return "image " + s
}

// truncate shortens s to at most n bytes (on a rune boundary), for logs.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// safeText makes text that may hold a certificate's or an error's words fit for a
// reason: printable ASCII only (anything else becomes '?'), at most n bytes.
func safeText(s string, n int) string {
	b := make([]byte, 0, min(len(s), n))
	for i := 0; i < len(s) && len(b) < n; i++ {
		c := s[i]
		if c < ' ' || c >= 0x7f {
			c = '?'
		}
		b = append(b, c)
	}
	if len(s) > n {
		return string(b) + "..."
	}
	return string(b)
}
