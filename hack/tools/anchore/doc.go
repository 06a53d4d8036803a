// Package anchore only anchors the tool directives of this nested module: the syft
// and grype commands, built by hack/bench/setup/syft.sh and grype.sh.
package anchore
