// Package kube only anchors the tool directives of this nested module.
package kube
