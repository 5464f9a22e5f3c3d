-- Control data: who the agents are, how they prove it, what they may spend
-- and where their calls go. Money is integer micro-units of a currency.

CREATE TABLE agents (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name          text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$'),
    parent_id     uuid REFERENCES agents(id) ON DELETE RESTRICT,
    status        text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    -- The root of the delegation tree: budget keys of a whole subtree share it
    -- as their Redis hash tag.
    root_id       uuid NOT NULL,
    depth         int NOT NULL DEFAULT 0 CHECK (depth BETWEEN 0 AND 7),
    rate_limit_rps   int NOT NULL DEFAULT 0 CHECK (rate_limit_rps >= 0),
    rate_limit_burst int NOT NULL DEFAULT 0 CHECK (rate_limit_burst >= 0),
    replay_required  boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (parent_id IS NULL OR parent_id <> id)
);
CREATE INDEX agents_parent_idx ON agents (parent_id);

-- root_id and depth follow the parent; a parent is fixed at creation, so the
-- tree has no cycles.
CREATE FUNCTION agents_set_root() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE p agents%ROWTYPE;
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.parent_id IS DISTINCT FROM OLD.parent_id THEN
        RAISE EXCEPTION 'the parent of an agent cannot change';
    END IF;
    IF NEW.parent_id IS NULL THEN
        NEW.root_id := NEW.id;
        NEW.depth := 0;
    ELSE
        SELECT * INTO p FROM agents WHERE id = NEW.parent_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'parent agent % does not exist', NEW.parent_id;
        END IF;
        NEW.root_id := p.root_id;
        NEW.depth := p.depth + 1;
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END $$;
CREATE TRIGGER agents_root BEFORE INSERT OR UPDATE ON agents
    FOR EACH ROW EXECUTE FUNCTION agents_set_root();

CREATE TABLE api_keys (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id    uuid NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    -- The visible part of the key ("crk_" + 12 characters); the lookup key.
    prefix      text NOT NULL UNIQUE CHECK (prefix ~ '^crk_[A-Za-z0-9]{12}$'),
    -- SHA-256 of the whole key; the secret itself is never stored.
    hash        bytea NOT NULL CHECK (length(hash) = 32),
    name        text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX api_keys_agent_idx ON api_keys (agent_id);

CREATE TABLE jwt_issuers (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    issuer       text NOT NULL UNIQUE CHECK (issuer <> ''),
    -- Pinned: a token whose alg is not listed here is rejected.
    algorithms   text[] NOT NULL CHECK (cardinality(algorithms) > 0
                     AND algorithms <@ ARRAY['RS256','ES256','EdDSA','HS256']::text[]),
    audiences    text[] NOT NULL CHECK (cardinality(audiences) > 0),
    -- Either a JWKS URL, or PEM public keys, or a reference to an HMAC secret
    -- (env:NAME or file:/path; never the secret itself).
    jwks_url     text,
    public_keys  text,
    hmac_secret_ref text,
    -- The claim that names the agent (its name or id).
    agent_claim  text NOT NULL DEFAULT 'sub',
    leeway_seconds int NOT NULL DEFAULT 60 CHECK (leeway_seconds BETWEEN 0 AND 600),
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (jwks_url IS NOT NULL OR public_keys IS NOT NULL OR hmac_secret_ref IS NOT NULL),
    CHECK (hmac_secret_ref IS NULL OR NOT ('RS256' = ANY(algorithms) OR 'ES256' = ANY(algorithms) OR 'EdDSA' = ANY(algorithms)))
);

CREATE TABLE mtls_identities (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id    uuid NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('san_uri', 'san_dns', 'fingerprint_sha256')),
    value       text NOT NULL CHECK (value <> ''),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (kind, value)
);

CREATE TABLE policies (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id      uuid NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    limit_micros  bigint NOT NULL CHECK (limit_micros >= 0),
    currency      char(3) NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
    window_size   text NOT NULL CHECK (window_size IN ('hourly', 'daily', 'weekly', 'monthly')),
    window_kind   text NOT NULL DEFAULT 'calendar' CHECK (window_kind IN ('calendar', 'rolling')),
    active        boolean NOT NULL DEFAULT true,
    version       int NOT NULL DEFAULT 1,
    change_reason text NOT NULL CHECK (change_reason <> ''),
    changed_by    text NOT NULL DEFAULT current_user,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (agent_id, window_size, window_kind)
);

CREATE TABLE policy_versions (
    policy_id     uuid NOT NULL REFERENCES policies(id) ON DELETE CASCADE,
    version       int NOT NULL,
    agent_id      uuid NOT NULL,
    limit_micros  bigint NOT NULL,
    currency      char(3) NOT NULL,
    window_size   text NOT NULL,
    window_kind   text NOT NULL,
    active        boolean NOT NULL,
    change_reason text NOT NULL,
    changed_by    text NOT NULL,
    changed_at    timestamptz NOT NULL,
    PRIMARY KEY (policy_id, version)
);

-- Every change bumps the version and is kept in the history with its reason.
CREATE FUNCTION policies_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        NEW.version := OLD.version + 1;
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END $$;
CREATE TRIGGER policies_version BEFORE INSERT OR UPDATE ON policies
    FOR EACH ROW EXECUTE FUNCTION policies_version();

CREATE FUNCTION policies_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO policy_versions VALUES (NEW.id, NEW.version, NEW.agent_id, NEW.limit_micros,
        NEW.currency, NEW.window_size, NEW.window_kind, NEW.active, NEW.change_reason,
        NEW.changed_by, NEW.updated_at);
    RETURN NULL;
END $$;
CREATE TRIGGER policies_history AFTER INSERT OR UPDATE ON policies
    FOR EACH ROW EXECUTE FUNCTION policies_history();

CREATE TABLE allow_lists (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id    uuid NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('route', 'model', 'target')),
    -- route: a route name; model: a model name or prefix ending in *;
    -- target: a host name (or *.suffix) a client-chosen target URL may name.
    pattern     text NOT NULL CHECK (pattern <> ''),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (agent_id, kind, pattern)
);

CREATE TABLE routes (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name            text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
    prefix          text NOT NULL UNIQUE CHECK (prefix ~ '^/[^?#]*$'),
    upstream_urls   text[] NOT NULL CHECK (cardinality(upstream_urls) > 0),
    -- Where the upstream's credential comes from (env:NAME, file:/path or
    -- none); agents never hold it.
    credential_ref  text NOT NULL DEFAULT 'none',
    credential_header text NOT NULL DEFAULT 'Authorization',
    credential_format text NOT NULL DEFAULT 'Bearer %s',
    provider        text NOT NULL DEFAULT 'openai' CHECK (provider IN ('openai', 'anthropic', 'generic')),
    pricing_mode    text NOT NULL DEFAULT 'tokens' CHECK (pricing_mode IN ('tokens', 'per_request', 'header')),
    price_per_request_micros bigint NOT NULL DEFAULT 0 CHECK (price_per_request_micros >= 0),
    price_header    text NOT NULL DEFAULT '',
    strip_prefix    boolean NOT NULL DEFAULT true,
    replay_required boolean NOT NULL DEFAULT false,
    strict          boolean NOT NULL DEFAULT false,
    fail_open       boolean NOT NULL DEFAULT false,
    allow_target_url boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (pricing_mode <> 'header' OR price_header <> '')
);

CREATE TABLE pricebook (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- The priced resource (a provider or route name) and model ('*' for any).
    resource      text NOT NULL CHECK (resource <> ''),
    model         text NOT NULL CHECK (model <> ''),
    -- input_mtok/output_mtok: price per million tokens; request: per call.
    unit          text NOT NULL CHECK (unit IN ('input_mtok', 'output_mtok', 'request')),
    price_micros  bigint NOT NULL CHECK (price_micros >= 0),
    currency      char(3) NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (resource, model, unit)
);

-- Gateways cache control data and drop entries on these notifications.
CREATE FUNCTION caracal_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE r record; agent text;
BEGIN
    IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
    agent := CASE WHEN TG_TABLE_NAME = 'agents' THEN r.id::text
                  WHEN TG_TABLE_NAME IN ('api_keys', 'mtls_identities', 'policies', 'allow_lists') THEN (to_jsonb(r)->>'agent_id')
                  ELSE '' END;
    PERFORM pg_notify('caracal_control', json_build_object(
        'table', TG_TABLE_NAME, 'op', TG_OP, 'id', (to_jsonb(r)->>'id'), 'agent_id', agent)::text);
    RETURN NULL;
END $$;

CREATE TRIGGER agents_notify AFTER INSERT OR UPDATE OR DELETE ON agents FOR EACH ROW EXECUTE FUNCTION caracal_notify();
CREATE TRIGGER api_keys_notify AFTER INSERT OR UPDATE OR DELETE ON api_keys FOR EACH ROW EXECUTE FUNCTION caracal_notify();
CREATE TRIGGER jwt_issuers_notify AFTER INSERT OR UPDATE OR DELETE ON jwt_issuers FOR EACH ROW EXECUTE FUNCTION caracal_notify();
CREATE TRIGGER mtls_identities_notify AFTER INSERT OR UPDATE OR DELETE ON mtls_identities FOR EACH ROW EXECUTE FUNCTION caracal_notify();
CREATE TRIGGER policies_notify AFTER INSERT OR UPDATE OR DELETE ON policies FOR EACH ROW EXECUTE FUNCTION caracal_notify();
CREATE TRIGGER allow_lists_notify AFTER INSERT OR UPDATE OR DELETE ON allow_lists FOR EACH ROW EXECUTE FUNCTION caracal_notify();
CREATE TRIGGER routes_notify AFTER INSERT OR UPDATE OR DELETE ON routes FOR EACH ROW EXECUTE FUNCTION caracal_notify();
CREATE TRIGGER pricebook_notify AFTER INSERT OR UPDATE OR DELETE ON pricebook FOR EACH ROW EXECUTE FUNCTION caracal_notify();
