package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// DownloadOSV fetches golang.org/x/vulndb@version into the module cache
// (through GOPROXY, like any module) and returns its data/osv directory.
func DownloadOSV(version string) (string, error) {
	mod := "golang.org/x/vulndb@" + version
	cmd := exec.Command("go", "mod", "download", "-json", mod)
	// Outside any module, so no go.mod or go.sum is touched.
	cmd.Dir = os.TempDir()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("cannot download %s: %w: %s%s", mod, err, stderr.Bytes(), b)
	}
	var info struct {
		Dir   string
		Error string
	}
	if err := json.Unmarshal(b, &info); err != nil {
		return "", fmt.Errorf("cannot decode go mod download output for %s: %w", mod, err)
	}
	if info.Error != "" {
		return "", fmt.Errorf("cannot download %s: %s", mod, info.Error)
	}
	dir := filepath.Join(info.Dir, "data", "osv")
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("cannot find OSV records in %s: %s has no data/osv directory", mod, info.Dir)
	}
	return dir, nil
}
