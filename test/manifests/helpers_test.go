package manifests_test

import (
	"strconv"

	"sigs.k8s.io/kustomize/kyaml/resid"
)

func itoa(i int) string { return strconv.Itoa(i) }

func id(kind, name, ns string) resid.ResId {
	return resid.NewResIdWithNamespace(resid.Gvk{Group: "apps", Version: "v1", Kind: kind}, name, ns)
}
