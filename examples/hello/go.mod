// The example service the README's main job builds, scans, signs and deploys. It is
// its own module so that its dependencies never enter the SDK's go.mod; it pins
// golang.org/x/text at v0.3.7 on purpose, a version with a known vulnerability
// (GHSA-69ch-w2m2-3vjp) for the scan and gate stages to find.
module github.com/shipkit/shipkit/examples/hello

go 1.26

require golang.org/x/text v0.3.7
