// Package evidence_test checks the SBOM attestation against the CycloneDX JSON schema, validated the
// way the CycloneDX Go library validates its own output (gojsonschema with the schema files it ships).
package evidence_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	cdx "github.com/CycloneDX/cyclonedx-go"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/xeipuuv/gojsonschema"

	"wanderlust.dev/pipeline/ci/stages/evidence"
	"wanderlust.dev/pipeline/ci/testsupport/testkeys"
)

// schema compiles the CycloneDX 1.7 JSON schema shipped in the cyclonedx-go module this build uses,
// with the schemas it refers to loaded from the same folder (no network). cyclonedx-go v0.12.0 does
// not ship cryptography-defs.schema.json, whose two enums type only cryptographic assets (an SBOM of
// an image has none): they are left open here.
func schema(t *testing.T) *gojsonschema.Schema {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/CycloneDX/cyclonedx-go").Output()
	if err != nil {
		t.Fatalf("locating cyclonedx-go: %v", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "schema")
	read := func(f string) gojsonschema.JSONLoader {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		return gojsonschema.NewBytesLoader(b)
	}
	sl := gojsonschema.NewSchemaLoader()
	for url, loader := range map[string]gojsonschema.JSONLoader{
		"http://cyclonedx.org/schema/spdx.schema.json":     read("spdx.schema.json"),
		"http://cyclonedx.org/schema/jsf-0.82.schema.json": read("jsf-0.82.schemax.json"),
		"http://cyclonedx.org/schema/cryptography-defs.schema.json": gojsonschema.NewStringLoader(
			`{"definitions":{"algorithmFamiliesEnum":{"type":"string"},"ellipticCurvesEnum":{"type":"string"}}}`),
	} {
		if err := sl.AddSchema(url, loader); err != nil {
			t.Fatalf("%s: %v", url, err)
		}
	}
	s, err := sl.Compile(read("bom-1.7.schema.json"))
	if err != nil {
		t.Fatalf("compiling the CycloneDX 1.7 schema: %v", err)
	}
	return s
}

func validate(t *testing.T, s *gojsonschema.Schema, doc []byte) []string {
	t.Helper()
	res, err := s.Validate(gojsonschema.NewBytesLoader(doc))
	if err != nil {
		t.Fatal(err)
	}
	var errs []string
	for _, e := range res.Errors() {
		errs = append(errs, e.String())
	}
	return errs
}

func decode(t *testing.T, b []byte) cdx.BOM {
	t.Helper()
	var bom cdx.BOM
	if err := cdx.NewBOMDecoder(bytes.NewReader(b), cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
		t.Fatal(err)
	}
	return bom
}

// The shared Trivy SBOM, attached as a signed attestation and read back, is the same BOM and valid
// against the CycloneDX 1.7 schema; a broken BOM is not (the validator can fail).
func TestSBOMAttestationRoundTripsAndValidates(t *testing.T) {
	fixture, err := os.ReadFile("../../../shared/fixtures/trivy/sbom.cdx.json")
	if err != nil {
		t.Fatalf("the shared Trivy fixture: %v", err)
	}
	s := schema(t)
	if errs := validate(t, s, fixture); len(errs) > 0 {
		t.Fatalf("the fixture itself is invalid: %v", errs)
	}

	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	img, _ := random.Image(256, 1)
	tag, _ := name.NewTag(strings.TrimPrefix(srv.URL, "http://") + "/wanderlust-backend:1.0.0")
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	ref := tag.Context().Digest(d.String())
	keys := testkeys.New(t, nil)
	st, err := evidence.SBOM(ref, fixture)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Signer.Attach(context.Background(), ref.String(), []evidence.Statement{st}, evidence.Remote{}); err != nil {
		t.Fatal(err)
	}
	f, err := keys.Verifier.Collect(context.Background(), ref.String(), evidence.Remote{})
	if err != nil {
		t.Fatal(err)
	}
	a := f.Attestations[evidence.CycloneDX]
	if a == nil {
		t.Fatalf("no SBOM attestation read back: %+v", f)
	}
	if errs := validate(t, s, a.Predicate); len(errs) > 0 {
		t.Fatalf("the SBOM read back from its attestation is invalid: %v", errs)
	}
	if want, got := decode(t, fixture), decode(t, a.Predicate); !reflect.DeepEqual(want, got) {
		t.Errorf("the SBOM changed on the way through the attestation")
	}

	// A broken BOM: the validator says so (and the SBOM statement refuses what is not CycloneDX).
	var doc map[string]any
	_ = json.Unmarshal(fixture, &doc)
	doc["components"] = []any{map[string]any{"type": "not-a-type", "name": 42}}
	broken, _ := json.Marshal(doc)
	if errs := validate(t, s, broken); len(errs) == 0 {
		t.Error("the schema accepted a component of an unknown type with a numeric name")
	}
	if _, err := evidence.SBOM(ref, []byte(`{"spdxVersion":"SPDX-2.3"}`)); err == nil {
		t.Error("an SPDX document was accepted as a CycloneDX SBOM")
	}
}
