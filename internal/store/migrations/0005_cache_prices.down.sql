-- The previous schema cannot hold cache prices: they are deleted, and the
-- tokens they priced go back to the input_mtok price.
DELETE FROM pricebook WHERE unit IN ('cache_write_mtok', 'cache_read_mtok');
ALTER TABLE pricebook DROP CONSTRAINT pricebook_unit_check;
ALTER TABLE pricebook ADD CONSTRAINT pricebook_unit_check
    CHECK (unit IN ('input_mtok', 'output_mtok', 'request'));
