package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// checkDockerfile parses the Dockerfile with BuildKit's parser and asserts a
// multi-stage build whose final stage runs as a non-root USER, with no ADD of a URL.
func checkDockerfile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("cannot open Dockerfile: %w", err)
	}
	defer f.Close()
	return checkDockerfileReader(path, f)
}

func checkDockerfileReader(path string, f io.Reader) error {
	res, err := parser.Parse(f)
	if err != nil {
		return fmt.Errorf("%s: cannot parse: %w", path, err)
	}
	stages, user := 0, ""
	for _, n := range res.AST.Children {
		switch strings.ToLower(n.Value) {
		case "from":
			stages++
			user = ""
		case "user":
			if n.Next != nil {
				user = n.Next.Value
			}
		case "add":
			for a := n.Next; a != nil; a = a.Next {
				if s := strings.ToLower(a.Value); strings.Contains(s, "://") || strings.HasPrefix(s, "git@") {
					return fmt.Errorf("%s:%d: ADD of a remote source %q", path, n.StartLine, a.Value)
				}
			}
		}
	}
	if stages < 2 {
		return fmt.Errorf("%s: %d stage(s); want a multi-stage build", path, stages)
	}
	name := strings.SplitN(user, ":", 2)[0]
	if name == "" || name == "root" || name == "0" {
		return fmt.Errorf("%s: the final stage runs as %q; want a non-root USER", path, user)
	}
	return nil
}
