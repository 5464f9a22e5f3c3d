-- Prompt-cache prices: cache_write_mtok and cache_read_mtok are per million
-- tokens written to and read from an upstream's prompt cache (Anthropic's
-- cache_creation_input_tokens and cache_read_input_tokens). A resource and
-- model without them charges those tokens at its input_mtok price.
ALTER TABLE pricebook DROP CONSTRAINT pricebook_unit_check;
ALTER TABLE pricebook ADD CONSTRAINT pricebook_unit_check
    CHECK (unit IN ('input_mtok', 'output_mtok', 'cache_write_mtok', 'cache_read_mtok', 'request'));
