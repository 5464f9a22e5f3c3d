DROP TABLE IF EXISTS pricebook, routes, allow_lists, policy_versions, policies,
    mtls_identities, jwt_issuers, api_keys, agents CASCADE;
DROP FUNCTION IF EXISTS caracal_notify(), policies_version(), policies_history(), agents_set_root();
