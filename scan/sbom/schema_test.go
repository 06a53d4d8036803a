package sbom_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/scan"
	"github.com/shipkit/shipkit/scan/internal/testimage"
	"github.com/shipkit/shipkit/scan/sbom"
)

// schemas compiles the official schemas in testdata/schema (see its README), with
// format assertions on, for the formats whose standards publish one.
func schemas(t *testing.T) map[sbom.Format]*jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	for _, r := range []struct{ file, id string }{
		{"spdx-schema-2.3.json", "http://spdx.org/rdf/terms/2.3"},
		{"bom-1.6.schema.json", "http://cyclonedx.org/schema/bom-1.6.schema.json"},
		{"spdx.schema.json", "http://cyclonedx.org/schema/spdx.schema.json"},
		{"jsf-0.82.schema.json", "http://cyclonedx.org/schema/jsf-0.82.schema.json"},
	} {
		f, err := os.Open(filepath.Join("testdata", "schema", r.file))
		require.NoError(t, err)
		doc, err := jsonschema.UnmarshalJSON(f)
		require.NoError(t, f.Close())
		require.NoError(t, err, r.file)
		require.NoError(t, c.AddResource(r.id, doc), r.file)
	}
	out := map[sbom.Format]*jsonschema.Schema{}
	for f, id := range map[sbom.Format]string{
		sbom.SPDXJSON:      "http://spdx.org/rdf/terms/2.3",
		sbom.CycloneDXJSON: "http://cyclonedx.org/schema/bom-1.6.schema.json",
	} {
		s, err := c.Compile(id)
		require.NoError(t, err, id)
		out[f] = s
	}
	return out
}

// TestEncodeValidatesAgainstSchemas writes the SBOMs of real images (a Go binary,
// dpkg status, a JAR; and an empty image) in SPDX 2.3 and CycloneDX 1.6 and
// validates them against the official JSON schemas.
func TestEncodeValidatesAgainstSchemas(t *testing.T) {
	testimage.GoBinary(t)
	isolateTemp(t)
	full, err := sbom.New().Catalog(context.Background(), testimage.Debian(t, "amd64"))
	require.NoError(t, err)
	require.NotEmpty(t, sbom.Summary(full))
	bare, err := sbom.New().Catalog(context.Background(), testimage.Image(t, "arm64"))
	require.NoError(t, err)

	compiled := schemas(t)
	for _, s := range []struct {
		name string
		sbom *scan.SBOM
	}{{"debian with go binary and jar", full}, {"empty image", bare}} {
		for _, format := range []sbom.Format{sbom.SPDXJSON, sbom.CycloneDXJSON} {
			t.Run(s.name+"/"+string(format), func(t *testing.T) {
				var buf bytes.Buffer
				require.NoError(t, sbom.Encode(&buf, s.sbom, format))
				doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(buf.Bytes()))
				require.NoError(t, err)
				assert.NoError(t, compiled[format].Validate(doc))
			})
		}
	}

	// The validator is not vacuous: the same documents, broken, fail.
	broken := []struct {
		format sbom.Format
		field  string
		value  any
	}{
		{sbom.SPDXJSON, "spdxVersion", nil},
		{sbom.SPDXJSON, "creationInfo", nil},
		{sbom.SPDXJSON, "packages", "none"},
		{sbom.CycloneDXJSON, "specVersion", 1.6},
		{sbom.CycloneDXJSON, "serialNumber", "not-a-urn"},
	}
	for _, b := range broken {
		t.Run("broken "+string(b.format)+" "+b.field, func(t *testing.T) {
			var buf bytes.Buffer
			require.NoError(t, sbom.Encode(&buf, full, b.format))
			var doc map[string]any
			require.NoError(t, json.Unmarshal(buf.Bytes(), &doc))
			if b.value == nil {
				delete(doc, b.field)
			} else {
				doc[b.field] = b.value
			}
			raw, err := json.Marshal(doc)
			require.NoError(t, err)
			inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
			require.NoError(t, err)
			assert.Error(t, compiled[b.format].Validate(inst))
		})
	}
}
