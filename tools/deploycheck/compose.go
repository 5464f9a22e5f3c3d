package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

// composeServices are the services the local stack must run.
var composeServices = []string{"kafka", "postgres", "redis", "migrate", "create-topics",
	"gateway", "consumer-ledger", "consumer-metrics", "consumer-audit", "mock-upstream"}

// checkCompose loads the compose file with compose-go (the loader docker compose
// uses), which validates it against the compose schema.
func checkCompose(path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	p, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  filepath.Dir(abs),
		ConfigFiles: []types.ConfigFile{{Filename: abs}},
		Environment: types.Mapping{},
	}, func(o *loader.Options) { o.SetProjectName("caracal", true) })
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	var missing []string
	for _, s := range composeServices {
		if _, ok := p.Services[s]; !ok {
			missing = append(missing, s)
		}
	}
	if k, ok := p.Services["kafka"]; ok && !strings.HasPrefix(k.Image, "apache/kafka") {
		return fmt.Errorf("%s: kafka runs %q; want the apache/kafka image (KRaft)", path, k.Image)
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("%s: services missing: %s", path, strings.Join(missing, ", "))
	}
	return nil
}
