package main

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	cdx "github.com/CycloneDX/cyclonedx-go"
)

// sbom of a role and of the image built from it: the same CycloneDX 1.5
// document, with the required fields, the deploys' revisions and the
// venv's distributions.
func TestSbom(t *testing.T) {
	out, errs, code := olimage(t, "-f", exampleFleet, "sbom", "ol-web")
	if code != 0 {
		t.Fatalf("sbom ol-web: exit %d: %s", code, errs)
	}
	checkCycloneDX(t, out)

	img := buildRole(t, exampleFleet, "ol-web")
	fromImage, errs, code := olimage(t, "sbom", img)
	if code != 0 {
		t.Fatalf("sbom IMAGE: exit %d: %s", code, errs)
	}
	if fromImage != out {
		t.Errorf("the image's bill of materials differs from the role's:\n%s\n%s", fromImage, out)
	}
}

func checkCycloneDX(t *testing.T, doc string) {
	t.Helper()
	var raw map[string]any
	if err := json.Unmarshal([]byte(doc), &raw); err != nil {
		t.Fatal(err)
	}
	// Required top-level properties of the 1.5 schema, and those a
	// consumer keys on.
	for k, want := range map[string]any{"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1.0, "$schema": "http://cyclonedx.org/schema/bom-1.5.schema.json"} {
		if raw[k] != want {
			t.Errorf("%s = %v, want %v", k, raw[k], want)
		}
	}
	if s, _ := raw["serialNumber"].(string); !regexp.MustCompile(`^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(s) {
		t.Errorf("serialNumber %q, want urn:uuid:... (the schema's pattern)", s)
	}
	var b cdx.BOM
	if err := cdx.NewBOMDecoder(strings.NewReader(doc), cdx.BOMFileFormatJSON).Decode(&b); err != nil {
		t.Fatal(err)
	}
	if b.Metadata == nil || b.Metadata.Component == nil || b.Metadata.Component.Name != "ol-web" || b.Metadata.Timestamp != "2024-01-01T00:00:00Z" {
		t.Errorf("metadata %+v, want the ol-web volume at the fleet epoch", b.Metadata)
	}
	refs := map[string]bool{}
	var got []string
	for _, c := range *b.Components {
		if c.Type == "" || c.Name == "" || c.BOMRef == "" {
			t.Errorf("component %+v lacks type, name or bom-ref", c)
		}
		if refs[c.BOMRef] {
			t.Errorf("bom-ref %q twice", c.BOMRef)
		}
		refs[c.BOMRef] = true
		got = append(got, string(c.Type)+" "+c.Name+" "+c.Version+" "+c.PackageURL)
	}
	for _, want := range []string{
		"library gunicorn 21.2.0 pkg:pypi/gunicorn@21.2.0",
		"library python-memcached 1.59 pkg:pypi/python-memcached@1.59",
		"library web.py 0.62 pkg:pypi/web-py@0.62",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("no component %q in %q", want, got)
		}
	}
	deploys := 0
	for _, g := range got {
		if strings.HasPrefix(g, "application olsystem ") || strings.HasPrefix(g, "application openlibrary ") {
			deploys++
		}
	}
	if deploys != 3 {
		t.Errorf("got %d deploys in %q, want 3 (olsystem twice, openlibrary)", deploys, got)
	}
	for _, d := range *b.Dependencies {
		for _, r := range *d.Dependencies {
			if !refs[r] {
				t.Errorf("dependency on unknown bom-ref %q", r)
			}
		}
	}
}
