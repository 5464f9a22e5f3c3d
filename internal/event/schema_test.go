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
			Type    string `json:"type"`
			Pattern string `json:"pattern"`
			Minimum *int64 `json:"minimum"`
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

// optionalMeteringFields are the fields the encoder writes only when not
// zero: they must be in the schema's properties, not in its required list.
var optionalMeteringFields = []string{"cache_write_tokens", "cache_read_tokens"}

func TestSchemaOptionalFields(t *testing.T) {
	raw, err := os.ReadFile("../../docs/event.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Required   []string `json:"required"`
		Properties map[string]struct {
			Type    string `json:"type"`
			Minimum *int64 `json:"minimum"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	e := sampleMetering()
	e.InputTokens, e.CacheWriteTokens, e.CacheReadTokens = 1012, 100, 900
	var got map[string]any
	if err := json.Unmarshal(e.AppendJSON(nil), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(schema.Required)+len(optionalMeteringFields) {
		t.Fatalf("encoder writes %d fields with cache tokens, want %d", len(got), len(schema.Required)+len(optionalMeteringFields))
	}
	for _, k := range optionalMeteringFields {
		p, ok := schema.Properties[k]
		if !ok || p.Type != "integer" || p.Minimum == nil || *p.Minimum != 0 {
			t.Errorf("schema property %q: %+v, want a non-negative integer", k, p)
		}
		for _, r := range schema.Required {
			if r == k {
				t.Errorf("optional field %q is required by the schema", k)
			}
		}
		if _, ok := got[k]; !ok {
			t.Errorf("encoder does not write %q when it is not zero", k)
		}
	}
	if got["cache_write_tokens"] != float64(100) || got["cache_read_tokens"] != float64(900) {
		t.Errorf("encoded cache tokens %v %v", got["cache_write_tokens"], got["cache_read_tokens"])
	}
	// Every field the encoder writes is described by the schema.
	for k := range got {
		if _, ok := schema.Properties[k]; !ok {
			t.Errorf("encoder writes %q, which the schema does not describe", k)
		}
	}
}
