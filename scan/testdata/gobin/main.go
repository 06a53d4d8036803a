// Command hello is linked against golang.org/x/text v0.3.6 (vendored: only the
// module's version matters, which the binary's build info records) so that the scan
// tests find the GitHub advisories of that version.
package main

import (
	"fmt"

	"golang.org/x/text/language"
)

func main() { fmt.Println(language.Tag()) }
