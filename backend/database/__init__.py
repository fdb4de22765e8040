"""Tables, the engine, and the Alembic migrations that create them."""
