package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

const (
	keyAlphabet   = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	keyPrefixRand = 12
	keySecretRand = 32
	// KeyPrefixLen is the length of the visible prefix "crk_" + 12.
	KeyPrefixLen = 4 + keyPrefixRand
)

var keyPrefixRE = regexp.MustCompile(`^crk_[A-Za-z0-9]{12}$`)

// NewKey is what creating an API key takes.
type NewKey struct {
	Agent     string // name or id
	Name      string
	ExpiresIn time.Duration // 0: never
}

// KeyRow is a stored key as listed: never the secret.
type KeyRow struct {
	Prefix    string     `json:"prefix"`
	Agent     string     `json:"agent"`
	AgentID   string     `json:"agent_id"`
	Name      string     `json:"name"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// CreatedKey is a new key with its secret, which exists only here.
type CreatedKey struct {
	KeyRow
	Key string `json:"key"`
}

// GenerateKey returns a new key "crk_" + 12 + "_" + 32 random alphanumerics
// and its prefix (the first 16 characters).
func GenerateKey() (key, prefix string, err error) {
	b := make([]byte, 0, KeyPrefixLen+1+keySecretRand)
	b = append(b, "crk_"...)
	if b, err = appendRandom(b, keyPrefixRand); err != nil {
		return "", "", err
	}
	b = append(b, '_')
	if b, err = appendRandom(b, keySecretRand); err != nil {
		return "", "", err
	}
	return string(b), string(b[:KeyPrefixLen]), nil
}

// appendRandom appends n characters of keyAlphabet drawn uniformly: bytes
// at or above 248 (4*62) are rejected so that no character is favoured.
func appendRandom(dst []byte, n int) ([]byte, error) {
	var buf [64]byte
	for n > 0 {
		if _, err := rand.Read(buf[:]); err != nil {
			return dst, fmt.Errorf("cannot read random bytes: %w", err)
		}
		for _, c := range buf {
			if n == 0 {
				break
			}
			if int(c) >= 4*len(keyAlphabet) {
				continue
			}
			dst = append(dst, keyAlphabet[int(c)%len(keyAlphabet)])
			n--
		}
	}
	return dst, nil
}

// HashKey is the stored digest of a whole key string.
func HashKey(key string) [32]byte { return sha256.Sum256([]byte(key)) }

// CreateKey generates a key for an agent, stores its prefix and hash, and
// returns the key once.
func CreateKey(ctx context.Context, q Execer, k NewKey) (CreatedKey, error) {
	if k.ExpiresIn < 0 {
		return CreatedKey{}, fmt.Errorf("key expiry must be in the future, not %s", k.ExpiresIn)
	}
	id, err := agentID(ctx, q, k.Agent)
	if err != nil {
		return CreatedKey{}, err
	}
	key, prefix, err := GenerateKey()
	if err != nil {
		return CreatedKey{}, err
	}
	h := HashKey(key)
	var exp pgtype.Timestamptz
	if k.ExpiresIn > 0 {
		exp = pgtype.Timestamptz{Time: time.Now().Add(k.ExpiresIn), Valid: true}
	}
	_, err = q.Exec(ctx, `INSERT INTO api_keys (agent_id, prefix, hash, name, expires_at) VALUES ($1, $2, $3, $4, $5)`,
		pgUUID(id), prefix, h[:], k.Name, exp)
	if err != nil {
		return CreatedKey{}, dbError(fmt.Sprintf("create a key for agent %q", k.Agent), err)
	}
	r, err := getKey(ctx, q, prefix)
	return CreatedKey{KeyRow: r, Key: key}, err
}

const keySelect = `SELECT k.prefix, a.name, k.agent_id, k.name, k.created_at, k.expires_at, k.revoked_at
	FROM api_keys k JOIN agents a ON a.id = k.agent_id`

func scanKeyRow(row pgx.Row) (KeyRow, error) {
	var r KeyRow
	var id pgtype.UUID
	err := row.Scan(&r.Prefix, &r.Agent, &id, &r.Name, &r.CreatedAt, &r.ExpiresAt, &r.RevokedAt)
	r.AgentID = uuidText(id)
	return r, err
}

func getKey(ctx context.Context, q Querier, prefix string) (KeyRow, error) {
	r, err := scanKeyRow(q.QueryRow(ctx, keySelect+` WHERE k.prefix = $1`, prefix))
	if errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("key %q %w", prefix, ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("cannot read key %q: %w", prefix, err)
	}
	return r, nil
}

// ListKeys returns the keys of one agent (or of all when agent is empty).
func ListKeys(ctx context.Context, q Querier, agent string) ([]KeyRow, error) {
	sql, args := keySelect+` ORDER BY a.name, k.created_at`, []any(nil)
	if agent != "" {
		id, err := agentID(ctx, q, agent)
		if err != nil {
			return nil, err
		}
		sql, args = keySelect+` WHERE k.agent_id = $1 ORDER BY k.created_at`, []any{pgUUID(id)}
	}
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("cannot list keys: %w", err)
	}
	return collect(rows, scanKeyRow, "list keys")
}

// RevokeKey marks the key with this prefix revoked (again a no-op).
func RevokeKey(ctx context.Context, q Execer, prefix string) (KeyRow, error) {
	if len(prefix) > KeyPrefixLen && prefix[KeyPrefixLen] == '_' {
		return KeyRow{}, fmt.Errorf("give the key prefix (the first %d characters), not the whole key", KeyPrefixLen)
	}
	if !keyPrefixRE.MatchString(prefix) {
		return KeyRow{}, fmt.Errorf("invalid key prefix %q: want crk_ and 12 letters or digits", prefix)
	}
	tag, err := q.Exec(ctx, `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE prefix = $1`, prefix)
	if err != nil {
		return KeyRow{}, dbError(fmt.Sprintf("revoke key %q", prefix), err)
	}
	if tag.RowsAffected() == 0 {
		return KeyRow{}, fmt.Errorf("key %q %w", prefix, ErrNotFound)
	}
	return getKey(ctx, q, prefix)
}

// collect scans every row with scan.
func collect[T any](rows pgx.Rows, scan func(pgx.Row) (T, error), what string) ([]T, error) {
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("cannot %s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot %s: %w", what, err)
	}
	return out, nil
}
