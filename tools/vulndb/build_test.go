package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestNonSupersededFix(t *testing.T) {
	ev := func(intro, fixed string) rangeEvt { return rangeEvt{Introduced: intro, Fixed: fixed} }
	for _, tc := range []struct {
		name   string
		ranges []osvRange
		want   string
	}{
		{"none", nil, ""},
		{"one fix", []osvRange{{"SEMVER", []rangeEvt{ev("0", ""), ev("", "0.3.7")}}}, "0.3.7"},
		{"latest of two", []osvRange{{"SEMVER", []rangeEvt{ev("0", ""), ev("", "1.20.14"), ev("1.21.0-0", ""), ev("", "1.21.7")}}}, "1.21.7"},
		{"reintroduced", []osvRange{{"SEMVER", []rangeEvt{ev("0", ""), ev("", "1.2.0"), ev("1.3.0", "")}}}, ""},
		{"no fix", []osvRange{{"SEMVER", []rangeEvt{ev("0", "")}}}, ""},
		{"not semver", []osvRange{{"ECOSYSTEM", []rangeEvt{ev("0", ""), ev("", "2.0.0")}}}, ""},
		{"pseudo-version", []osvRange{{"SEMVER", []rangeEvt{ev("0", ""), ev("", "0.0.0-20220314234659-1baeb1ce4c0b")}}}, "0.0.0-20220314234659-1baeb1ce4c0b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := nonSupersededFix(tc.ranges); got != tc.want {
				t.Fatalf("nonSupersededFix = %q, want %q", got, tc.want)
			}
		})
	}
}

const recText = `{"schema_version":"1.3.1","id":"GO-2021-0113","modified":"0001-01-01T00:00:00Z",
"published":"2021-10-06T17:51:21Z","aliases":["CVE-2021-38561"],"summary":"Out-of-bounds read <x>",
"affected":[{"package":{"name":"golang.org/x/text","ecosystem":"Go"},
"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"0.3.7"}]}],
"ecosystem_specific":{"imports":[{"path":"golang.org/x/text/language","symbols":["Parse"]}]}}]}`

const recStd = `{"schema_version":"1.3.1","id":"GO-2026-0001","modified":"0001-01-01T00:00:00Z",
"published":"0001-01-01T00:00:00Z","affected":[
{"package":{"name":"stdlib","ecosystem":"Go"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.25.9"},{"introduced":"1.26.0-0"},{"fixed":"1.26.9"}]}]},
{"package":{"name":"toolchain","ecosystem":"Go"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"}]}]}]}`

const recDated = `{"id":"GO-2023-0002","modified":"2024-02-01T10:00:00Z","published":"2023-01-01T00:00:00Z",
"affected":[{"package":{"name":"golang.org/x/text","ecosystem":"Go"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"0.14.0"}]}]}]}`

func writeRecords(t *testing.T, recs map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range recs {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func TestBuild(t *testing.T) {
	src := writeRecords(t, map[string]string{
		"GO-2021-0113.json": recText,
		"GO-2026-0001.json": recStd,
		"GO-2023-0002.json": recDated,
		"README.md":         "not a record",
	})
	out := filepath.Join(t.TempDir(), "db")
	fallback := time.Date(2026, 11, 5, 23, 49, 57, 0, time.UTC)
	if UpToDate(out, "s1") {
		t.Fatal("UpToDate before any build")
	}
	n, err := Build(src, out, "s1", fallback)
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("Build wrote %d entries, want 3", n)
	}

	var db dbMeta
	readJSON(t, filepath.Join(out, "index", "db.json"), &db)
	if !db.Modified.Equal(fallback) {
		t.Fatalf("db modified = %v, want %v", db.Modified, fallback)
	}

	var mods []moduleMeta
	readJSON(t, filepath.Join(out, "index", "modules.json"), &mods)
	wantMods := []moduleMeta{
		{Path: "golang.org/x/text", Vulns: []moduleVuln{
			{ID: "GO-2021-0113", Modified: time.Date(2021, 10, 6, 17, 51, 21, 0, time.UTC), Fixed: "0.3.7"},
			{ID: "GO-2023-0002", Modified: time.Date(2024, 2, 1, 10, 0, 0, 0, time.UTC), Fixed: "0.14.0"},
		}},
		{Path: "stdlib", Vulns: []moduleVuln{{ID: "GO-2026-0001", Modified: fallback, Fixed: "1.26.9"}}},
		{Path: "toolchain", Vulns: []moduleVuln{{ID: "GO-2026-0001", Modified: fallback}}},
	}
	if got, want := mustJSON(t, mods), mustJSON(t, wantMods); got != want {
		t.Fatalf("modules.json\n got %s\nwant %s", got, want)
	}

	var vulns []vulnMeta
	readJSON(t, filepath.Join(out, "index", "vulns.json"), &vulns)
	if len(vulns) != 3 || vulns[0].ID != "GO-2021-0113" || vulns[0].Aliases[0] != "CVE-2021-38561" || vulns[2].ID != "GO-2026-0001" {
		t.Fatalf("vulns.json = %+v", vulns)
	}

	// Entries keep their fields; a zero modified time is filled in.
	var e map[string]any
	readJSON(t, filepath.Join(out, "ID", "GO-2021-0113.json"), &e)
	if e["modified"] != "2021-10-06T17:51:21Z" || e["summary"] != "Out-of-bounds read <x>" || e["schema_version"] != "1.3.1" {
		t.Fatalf("entry = %v", e)
	}
	if _, ok := e["affected"].([]any)[0].(map[string]any)["ecosystem_specific"]; !ok {
		t.Fatalf("entry lost ecosystem_specific: %v", e)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "ID", "GO-2021-0113.json")); strings.Contains(string(b), `\u003c`) {
		t.Fatalf("entry HTML-escaped: %s", b)
	}
	raw, err := os.ReadFile(filepath.Join(out, "ID", "GO-2023-0002.json"))
	if err != nil || string(raw) != recDated {
		t.Fatalf("dated entry rewritten: %s %v", raw, err)
	}
	if _, err := os.Stat(filepath.Join(out, "ID", "README.json")); err == nil {
		t.Fatal("non-record copied")
	}

	if !UpToDate(out, "s1") || UpToDate(out, "s2") {
		t.Fatal("UpToDate does not follow the stamp")
	}
	// A rebuild replaces the database and leaves no temporary directory.
	if _, err := Build(writeRecords(t, map[string]string{"GO-2023-0002.json": recDated}), out, "s2", fallback); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, "ID", "GO-2021-0113.json")); err == nil {
		t.Fatal("old entry survived a rebuild")
	}
	if _, err := os.Stat(out + ".tmp"); err == nil {
		t.Fatal("temporary directory left behind")
	}
	if !UpToDate(out, "s2") {
		t.Fatal("not up to date after rebuild")
	}
}

func TestBuildRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		recs map[string]string
		want string
	}{
		{"empty", map[string]string{"x.txt": "x"}, "no OSV records"},
		{"name mismatch", map[string]string{"GO-2021-9999.json": recText}, "file name must be"},
		{"bad json", map[string]string{"GO-2021-0113.json": "{"}, "cannot decode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "db")
			_, err := Build(writeRecords(t, tc.recs), out, "s", time.Time{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if UpToDate(out, "s") {
				t.Fatal("failed build left a usable database")
			}
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
