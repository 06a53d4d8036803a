// Package language is a stand-in for golang.org/x/text/language v0.3.6: the scan tests
// need a binary whose build info names that module version, not its code.
package language

// Tag returns a language tag.
func Tag() string { return "en" }
