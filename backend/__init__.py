"""runview's server: Starlette + Strawberry + SQLAlchemy.

Layers, each importing only the ones below it:
``api`` (GraphQL, no SQL) -> ``orchestration`` (state rules) and ``models`` (the only SQL)
-> ``database`` (tables, engine, migrations).
"""
