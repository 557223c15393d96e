"""Storage: the database (SQLite embedded, PostgreSQL in production), its migrations, the batch
writer of the request log, and the read queries. Nothing on the request path waits for it."""
