package daggerfake

import (
	"reflect"
	"strings"
	"testing"
)

func TestChain(t *testing.T) {
	for q, want := range map[string][]string{
		`query Query {container{from(address:"node:20"){withExec(args:["sh","-c","echo {x} (y)"]){stdout}}}}`:      {"container", "from", "withExec", "stdout"},
		`query Query {loadContainerFromID(id:"abc"){withMountedCache(path:"/c",cache:"id",sharing:LOCKED){sync}}}`: {"loadContainerFromID", "withMountedCache", "sync"},
		`query Query {secret(uri:"env://X"){plaintext}}`:                                                           {"secret", "plaintext"},
		`query Query {directory{withNewFile(path:"a",contents:"x \"quoted\" }"){id}}}`:                             {"directory", "withNewFile", "id"},
	} {
		if got := Chain(q); !reflect.DeepEqual(got, want) {
			t.Errorf("Chain(%s) = %v, want %v", q, got, want)
		}
	}
}

func TestCalls(t *testing.T) {
	q := `container{withExec(args:["echo","(x)"], expect:ANY){withExec(useEntrypoint:true, args:["b"]){withExecX{sync}}}}`
	if got := Calls(q, "withExec"); !reflect.DeepEqual(got, []string{`args:["echo","(x)"], expect:ANY`, `useEntrypoint:true, args:["b"]`}) {
		t.Errorf("Calls = %q", got)
	}
	if !HasCall(q, "withExec", `args:["b"]`, "useEntrypoint:true") || HasCall(q, "withExec", `args:["c"]`) {
		t.Error("HasCall")
	}
}

// A query through an inline fragment (what the SDK sends after Sync) reads as the node's fields.
func TestChainThroughAnInlineFragment(t *testing.T) {
	if got := Chain(`query{node(id:"fake-id-0123456789abcdef"){... on Container{exitCode}}}`); strings.Join(got, " ") != "node exitCode" {
		t.Errorf("chain %q", got)
	}
}

// Two queries that differ only in the order of arguments are one definition.
func TestCanonical(t *testing.T) {
	a := `{container{from(address:"x"){withDirectory(path:"/a", include:["b","c"], source:<{directory{withNewFile(path:"f", contents:"(x, y)"){id}}}>){id}}}}`
	b := `{container{from(address:"x"){withDirectory(source:<{directory{withNewFile(contents:"(x, y)", path:"f"){id}}}>, include:["b","c"], path:"/a"){id}}}}`
	if Canonical(a) != Canonical(b) {
		t.Errorf("%s\n%s", Canonical(a), Canonical(b))
	}
	if Canonical(a) == Canonical(strings.Replace(b, `"/a"`, `"/b"`, 1)) {
		t.Error("different definitions compare equal")
	}
}
