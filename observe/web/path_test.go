package web_test

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/observe"
	"github.com/shipkit/shipkit/observe/web"
)

const doc = `{
	"status": "success",
	"data": {"result": [{"metric": {"version": "v2"}, "value": [1700000000, "0.995"]}]},
	"rate": 0.97,
	"big": 12345678901234567890,
	"nan": "NaN",
	"empty": [],
	"nothing": null,
	"ok": true,
	"a.b": {"c]d": 3},
	"text": "fast"
}`

func TestPathNumber(t *testing.T) {
	dec := json.NewDecoder(strings.NewReader(doc))
	dec.UseNumber()
	var v any
	require.NoError(t, dec.Decode(&v))
	tests := []struct {
		path    string
		want    float64
		wantErr string
		noData  bool
	}{
		{path: "$.rate", want: 0.97},
		{path: "rate", want: 0.97},
		{path: ".rate", want: 0.97},
		{path: "$.data.result[0].value[1]", want: 0.995},
		{path: "$.data.result[0].value[0]", want: 1700000000},
		{path: `$["a.b"]['c]d']`, want: 3},
		{path: `$[ "a.b" ]["c]d"]`, want: 3},
		{path: "big", want: 12345678901234567890},
		{path: "nan", want: math.NaN()},
		{path: "$.missing", wantErr: `$ has no key "missing"`, noData: true},
		{path: "$.empty[0]", wantErr: "$.empty has 0 elements, no index 0", noData: true},
		{path: "$.data.result[1].value", wantErr: "$.data.result has 1 elements, no index 1", noData: true},
		{path: "$.nothing", wantErr: "$.nothing is null", noData: true},
		{path: "$.nothing.x", wantErr: "$.nothing is null", noData: true},
		{path: "$.ok", wantErr: "$.ok is a boolean, not a number"},
		{path: "$.text", wantErr: `$.text is the string "fast", not a number`},
		{path: "$.data", wantErr: "$.data is an object, not a number"},
		{path: "$.data[0]", wantErr: "$.data is an object, not an array to index with [0]"},
		{path: "$.empty.x", wantErr: `$.empty is an array, not an object with key "x"`},
		{path: "$.rate.x", wantErr: "$.rate is a number, not an object or array"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			p, err := web.ParsePath(tt.path)
			require.NoError(t, err)
			assert.Equal(t, tt.path, p.String())
			got, err := p.Number(v)
			if tt.wantErr != "" {
				assert.ErrorContains(t, err, tt.wantErr)
				assert.Equal(t, tt.noData, errorsIs(err, observe.ErrNoData))
				return
			}
			require.NoError(t, err)
			if math.IsNaN(tt.want) {
				assert.True(t, math.IsNaN(got))
			} else {
				assert.Equal(t, tt.want, got) //nolint:testifylint // parsed, not computed
			}
		})
	}
}

func TestParsePathInvalid(t *testing.T) {
	for path, want := range map[string]string{
		"$.a..b":     "empty key",
		"$.a[":       "unclosed [",
		"$.a[x]":     `index "x"`,
		"$.a[-1]":    `index "-1"`,
		`$["a]`:      "unclosed quote",
		`$["a"x]`:    `want ] after the quoted key "a"`,
		"$x":         `unexpected "x"`,
		"$.a[0]b":    `unexpected "b"`,
		"$.":         "empty key",
		`$.a["b"]]c`: `unexpected "]"`,
	} {
		_, err := web.ParsePath(path)
		assert.ErrorContains(t, err, want, path)
		assert.ErrorContains(t, err, fmt.Sprintf("%q", path), "the error names the path")
	}
}
