package linearize

import (
	"path/filepath"
	"testing"

	"github.com/anishathalye/porcupine"
)

func op(client int, call, ret int64, in Input, out Output) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret}
}

func TestModel(t *testing.T) {
	put := func(k, v string) Input { return Input{Kind: Put, Key: k, Value: v} }
	get := func(k string) Input { return Input{Kind: Get, Key: k} }
	cas := func(k, old, v string) Input { return Input{Kind: CAS, Key: k, Expected: old, Value: v} }
	found := func(v string) Output { return Output{Found: true, Value: v} }
	unknown := Output{Unknown: true}
	tests := []struct {
		name string
		ops  []porcupine.Operation
		want porcupine.CheckResult
	}{
		{"sequential put get", []porcupine.Operation{
			op(0, 0, 10, put("a", "1"), Output{}),
			op(1, 20, 30, get("a"), found("1")),
		}, porcupine.Ok},
		{"stale read", []porcupine.Operation{
			op(0, 0, 10, put("a", "1"), Output{}),
			op(0, 11, 12, put("a", "2"), Output{}),
			op(1, 20, 30, get("a"), found("1")),
		}, porcupine.Illegal},
		{"read of missing key after put", []porcupine.Operation{
			op(0, 0, 10, put("a", "1"), Output{}),
			op(1, 20, 30, get("a"), Output{}),
		}, porcupine.Illegal},
		{"keys are independent", []porcupine.Operation{
			op(0, 0, 10, put("a", "1"), Output{}),
			op(1, 20, 30, get("b"), Output{}),
		}, porcupine.Ok},
		{"unknown put may apply late", []porcupine.Operation{
			op(0, 0, 1<<40, put("a", "1"), unknown),
			op(1, 20, 30, get("a"), Output{}),
			op(1, 40, 50, get("a"), found("1")),
		}, porcupine.Ok},
		{"unknown put may never apply", []porcupine.Operation{
			op(0, 0, 1<<40, put("a", "1"), unknown),
			op(1, 20, 30, get("a"), Output{}),
		}, porcupine.Ok},
		{"unknown put cannot apply twice", []porcupine.Operation{
			op(0, 0, 1<<40, put("a", "1"), unknown),
			op(1, 20, 30, get("a"), found("1")),
			op(1, 31, 32, put("a", "2"), Output{}),
			op(1, 40, 50, get("a"), found("1")),
		}, porcupine.Illegal},
		{"cas succeeds only on match", []porcupine.Operation{
			op(0, 0, 10, put("a", "1"), Output{}),
			op(0, 20, 30, cas("a", "0", "2"), Output{Succeeded: true}),
		}, porcupine.Illegal},
		{"cas must-not-exist", []porcupine.Operation{
			op(0, 0, 10, Input{Kind: CAS, Key: "a", MustNotExist: true, Value: "1"}, Output{Succeeded: true}),
			op(0, 20, 30, Input{Kind: CAS, Key: "a", MustNotExist: true, Value: "2"}, Output{Succeeded: false}),
			op(0, 40, 50, get("a"), found("1")),
		}, porcupine.Ok},
		{"delete reports existence", []porcupine.Operation{
			op(0, 0, 10, put("a", "1"), Output{}),
			op(0, 20, 30, Input{Kind: Delete, Key: "a"}, Output{Found: false}),
		}, porcupine.Illegal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, info := porcupine.CheckOperationsVerbose(Model, tt.ops, 0)
			if got != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
			if got == porcupine.Illegal {
				if err := porcupine.VisualizePath(Model, info, filepath.Join(t.TempDir(), "v.html")); err != nil {
					t.Fatalf("visualize: %v", err)
				}
			}
		})
	}
}
