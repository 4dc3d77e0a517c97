"""The shared record: models, engine, migrations."""
