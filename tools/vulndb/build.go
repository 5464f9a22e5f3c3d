package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/mod/semver"
)

// StampFile, inside the database directory, holds the source the database
// was built from. govulncheck reads only index/*.json and ID/*.json.
const StampFile = ".caracal-source"

// entry is the part of an OSV record the indexes need.
type entry struct {
	ID        string     `json:"id"`
	Modified  time.Time  `json:"modified"`
	Published time.Time  `json:"published"`
	Withdrawn *time.Time `json:"withdrawn,omitempty"`
	Aliases   []string   `json:"aliases,omitempty"`
	Affected  []affected `json:"affected"`
}

type affected struct {
	Package struct {
		Name string `json:"name"`
	} `json:"package"`
	Ranges []osvRange `json:"ranges,omitempty"`
}

type osvRange struct {
	Type   string     `json:"type"`
	Events []rangeEvt `json:"events"`
}

type rangeEvt struct {
	Introduced string `json:"introduced,omitempty"`
	Fixed      string `json:"fixed,omitempty"`
}

// The index endpoints, as golang.org/x/vuln's client and x/vulndb's
// generator define them.
type dbMeta struct {
	Modified time.Time `json:"modified"`
}

type moduleMeta struct {
	Path  string       `json:"path"`
	Vulns []moduleVuln `json:"vulns"`
}

type moduleVuln struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
	Fixed    string    `json:"fixed,omitempty"`
}

type vulnMeta struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
	Aliases  []string  `json:"aliases,omitempty"`
}

// UpToDate reports whether dir holds a complete database built from source.
func UpToDate(dir, source string) bool {
	b, err := os.ReadFile(filepath.Join(dir, StampFile))
	if err != nil || strings.TrimSpace(string(b)) != source {
		return false
	}
	_, err = os.Stat(filepath.Join(dir, "index", "modules.json"))
	return err == nil
}

// Build reads the OSV records <ID>.json in src and writes a v1 database to
// out, replacing any database there. It returns the number of entries.
//
// Records in x/vulndb's data/osv carry a zero "modified" time, and most a
// zero "published" time (x/vulndb's generator fills both from git history,
// which a module zip lacks). Such an entry gets its published (or withdrawn,
// if later) time, else fallback: the time of the x/vulndb commit, which no
// modification can postdate.
func Build(src, out, source string, fallback time.Time) (int, error) {
	files, err := os.ReadDir(src)
	if err != nil {
		return 0, fmt.Errorf("cannot read OSV directory: %w", err)
	}
	tmp := out + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return 0, fmt.Errorf("cannot clear %s: %w", tmp, err)
	}
	for _, d := range []string{"index", "ID"} {
		if err := os.MkdirAll(filepath.Join(tmp, d), 0o755); err != nil {
			return 0, fmt.Errorf("cannot create database directory: %w", err)
		}
	}

	var db dbMeta
	modules := map[string]*moduleMeta{}
	var vulns []vulnMeta
	for _, f := range files {
		name := f.Name()
		if f.IsDir() || filepath.Ext(name) != ".json" {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			return 0, fmt.Errorf("cannot read OSV record: %w", err)
		}
		var e entry
		if err := json.Unmarshal(raw, &e); err != nil {
			return 0, fmt.Errorf("cannot decode OSV record %s: %w", name, err)
		}
		if e.ID == "" || name != e.ID+".json" {
			return 0, fmt.Errorf("cannot index %s: file name must be <id>.json (id %q)", name, e.ID)
		}
		if e.Modified.IsZero() {
			e.Modified = e.Published
			if e.Withdrawn != nil && e.Withdrawn.After(e.Modified) {
				e.Modified = *e.Withdrawn
			}
			if e.Modified.IsZero() {
				e.Modified = fallback
			}
			if raw, err = setModified(raw, e.Modified); err != nil {
				return 0, fmt.Errorf("cannot rewrite OSV record %s: %w", name, err)
			}
		}
		if err := os.WriteFile(filepath.Join(tmp, "ID", name), raw, 0o644); err != nil {
			return 0, fmt.Errorf("cannot write entry: %w", err)
		}

		if e.Modified.After(db.Modified) {
			db.Modified = e.Modified
		}
		vulns = append(vulns, vulnMeta{ID: e.ID, Modified: e.Modified, Aliases: e.Aliases})
		for _, a := range e.Affected {
			m := modules[a.Package.Name]
			if m == nil {
				m = &moduleMeta{Path: a.Package.Name, Vulns: []moduleVuln{}}
				modules[a.Package.Name] = m
			}
			m.Vulns = append(m.Vulns, moduleVuln{ID: e.ID, Modified: e.Modified, Fixed: nonSupersededFix(a.Ranges)})
		}
	}
	if len(vulns) == 0 {
		return 0, fmt.Errorf("cannot build database: no OSV records in %s", src)
	}

	mods := make([]*moduleMeta, 0, len(modules))
	for _, m := range modules {
		sort.SliceStable(m.Vulns, func(i, j int) bool { return m.Vulns[i].ID < m.Vulns[j].ID })
		mods = append(mods, m)
	}
	sort.Slice(mods, func(i, j int) bool { return mods[i].Path < mods[j].Path })
	sort.Slice(vulns, func(i, j int) bool { return vulns[i].ID < vulns[j].ID })
	for _, w := range []struct {
		name string
		v    any
	}{{"db.json", db}, {"modules.json", mods}, {"vulns.json", vulns}} {
		b, err := json.Marshal(w.v)
		if err != nil {
			return 0, fmt.Errorf("cannot encode index/%s: %w", w.name, err)
		}
		if err := os.WriteFile(filepath.Join(tmp, "index", w.name), b, 0o644); err != nil {
			return 0, fmt.Errorf("cannot write index: %w", err)
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, StampFile), []byte(source+"\n"), 0o644); err != nil {
		return 0, fmt.Errorf("cannot write stamp: %w", err)
	}
	if err := os.RemoveAll(out); err != nil {
		return 0, fmt.Errorf("cannot remove old database: %w", err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return 0, fmt.Errorf("cannot move database into place: %w", err)
	}
	return len(vulns), nil
}

// setModified returns the record with its "modified" field set to t; the
// other fields are kept as they are (keys come out sorted).
func setModified(raw []byte, t time.Time) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	tb, err := json.Marshal(t)
	if err != nil {
		return nil, err
	}
	m["modified"] = tb
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// nonSupersededFix returns the latest fixed version that no later
// introduction supersedes, or "" if there is none; it follows
// golang.org/x/vuln/internal/semver.NonSupersededFix.
func nonSupersededFix(ranges []osvRange) string {
	var latest string
	for _, r := range ranges {
		if r.Type != "SEMVER" {
			continue
		}
		for _, e := range r.Events {
			if e.Fixed != "" && less(latest, e.Fixed) {
				latest = e.Fixed
			}
		}
		for _, e := range r.Events {
			if e.Introduced != "" && e.Introduced != "0" && less(latest, e.Introduced) {
				latest = ""
				break
			}
		}
	}
	return latest
}

// less compares versions written with a "v", "go" or no prefix.
func less(a, b string) bool {
	return semver.Compare(canonical(a), canonical(b)) < 0
}

func canonical(s string) string {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "v"), "go")
	return "v" + s
}
