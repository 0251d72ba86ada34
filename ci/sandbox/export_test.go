package sandbox

// For the external tests.
var (
	ArgoCDManifests = argoCDManifests
	RolloutsCRDs    = rolloutsCRDs
	YAMLDocs        = yamlDocs
)
