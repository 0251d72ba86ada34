package build

import (
	"os"
	"reflect"
	"testing"
)

func TestFromImages(t *testing.T) {
	df := "# syntax=docker/dockerfile:1\nFROM --platform=$BUILDPLATFORM docker.io/library/node:20 AS deps\n" +
		"RUN npm ci\nfrom deps AS test\nFROM scratch AS empty\nFROM docker.io/library/node:20\nFROM nginx:1.27@sha256:abc\n"
	got := FromImages(df)
	want := []string{"docker.io/library/node:20", "nginx:1.27@sha256:abc"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("FromImages = %v, want %v", got, want)
	}
	// The sample app's Dockerfile: one base image, used by two stages.
	b, err := os.ReadFile("../../../testdata/sample-app/backend/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if got := FromImages(string(b)); !reflect.DeepEqual(got, []string{NodeImage}) {
		t.Errorf("sample backend: %v", got)
	}
}
