package daggerfake

import (
	"reflect"
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
