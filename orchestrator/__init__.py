"""The controller: what the operator drives (state, certificates, artifacts, secrets, planning, CLI)."""
