package sandbox

// For the external tests.
var (
	ArgoCDManifests = argoCDManifests
	YAMLDocs        = yamlDocs
)
