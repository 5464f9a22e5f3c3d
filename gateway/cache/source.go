package cache

import (
	"context"
	"errors"

	"github.com/caracal-gw/caracal/internal/control"
	"github.com/caracal-gw/caracal/internal/event"
	"github.com/caracal-gw/caracal/internal/store"
)

// DBSource reads control data from PostgreSQL with the store's loaders.
type DBSource struct{ Q store.Querier }

// Agent implements Source.
func (s DBSource) Agent(ctx context.Context, id event.UUID) (*control.Agent, error) {
	return notFoundIsNil(store.LoadAgent(ctx, s.Q, id))
}

func notFoundIsNil(a *control.Agent, err error) (*control.Agent, error) {
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return a, err
}

// AgentByName implements Source.
func (s DBSource) AgentByName(ctx context.Context, name string) (*control.Agent, error) {
	return notFoundIsNil(store.LoadAgentByName(ctx, s.Q, name))
}

// APIKey implements Source.
func (s DBSource) APIKey(ctx context.Context, prefix string) (control.APIKey, bool, error) {
	return store.LoadAPIKey(ctx, s.Q, prefix)
}

// Tables implements Source.
func (s DBSource) Tables(ctx context.Context) (*Tables, error) {
	var t Tables
	var err error
	if t.Routes, err = store.LoadRoutes(ctx, s.Q); err != nil {
		return nil, err
	}
	if t.Prices, err = store.LoadPrices(ctx, s.Q); err != nil {
		return nil, err
	}
	if t.Issuers, err = store.LoadJWTIssuers(ctx, s.Q); err != nil {
		return nil, err
	}
	if t.Identities, err = store.LoadMTLSIdentities(ctx, s.Q); err != nil {
		return nil, err
	}
	return &t, nil
}
