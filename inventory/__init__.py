"""inventory package."""
