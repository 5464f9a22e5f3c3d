package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// checkDockerignore fails when .dockerignore would keep a file the image build needs
// out of the context: go.mod, go.sum and every source and embedded file of the
// packages behind cmd/caracal and cmd/caracal-mock (listed by `go list -deps`).
func checkDockerignore(repo string) error {
	f, err := os.Open(filepath.Join(repo, ".dockerignore"))
	if err != nil {
		return fmt.Errorf("cannot open .dockerignore: %w", err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		return fmt.Errorf("cannot parse .dockerignore: %w", err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return fmt.Errorf("cannot parse .dockerignore: %w", err)
	}
	needed, err := buildFiles(repo)
	if err != nil {
		return err
	}
	for _, p := range append(needed, "go.mod", "go.sum", "Dockerfile") {
		if ex, err := pm.MatchesOrParentMatches(p); err != nil || ex {
			return fmt.Errorf(".dockerignore excludes %s, which the image build needs", p)
		}
	}
	return nil
}

func buildFiles(repo string) ([]string, error) {
	abs, err := filepath.Abs(repo)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("go", "list", "-deps", "-json=Dir,GoFiles,EmbedFiles,Standard", "./cmd/caracal", "./cmd/caracal-mock")
	cmd.Dir = abs
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("cannot list the image's packages: %w", err)
	}
	var files []string
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p struct {
			Dir                 string
			GoFiles, EmbedFiles []string
			Standard            bool
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("cannot decode go list: %w", err)
		}
		rel, err := filepath.Rel(abs, p.Dir)
		if p.Standard || err != nil || strings.HasPrefix(rel, "..") {
			continue
		}
		for _, f := range append(p.GoFiles, p.EmbedFiles...) {
			files = append(files, filepath.ToSlash(filepath.Join(rel, f)))
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("go list found no source files for the image")
	}
	return files, nil
}
