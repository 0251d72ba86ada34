// Wanderlust's CI + GitOps pipeline as a Dagger module.
package main

import "wanderlust.dev/pipeline/ci/internal/dagger"

// Wanderlust is the pipeline.
type Wanderlust struct{}

// Hello is a placeholder.
func (m *Wanderlust) Hello(s *dagger.Secret) *dagger.Container { return dag.Container() }
