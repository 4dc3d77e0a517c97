"""Alembic migrations of the state database (run programmatically by `orchestrator.state.db.init_schema`)."""
