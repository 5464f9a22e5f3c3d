package event

import (
	"encoding/json"
	"os"
	"regexp"
	"testing"
)

// TestSchemaMatchesEncoder checks that the encoder writes exactly the fields
// the published JSON Schema requires, and that patterns hold.
func TestSchemaMatchesEncoder(t *testing.T) {
	raw, err := os.ReadFile("../../docs/event.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Required   []string `json:"required"`
		Properties map[string]struct {
			Pattern string `json:"pattern"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(sampleMetering().AppendJSON(nil), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(schema.Required) {
		t.Fatalf("encoder writes %d fields, schema requires %d", len(got), len(schema.Required))
	}
	for _, k := range schema.Required {
		v, ok := got[k]
		if !ok {
			t.Fatalf("encoder does not write required field %q", k)
		}
		if p := schema.Properties[k].Pattern; p != "" {
			if s, _ := v.(string); !regexp.MustCompile(p).MatchString(s) {
				t.Fatalf("field %s = %v does not match %s", k, v, p)
			}
		}
	}
}
