"""Persistence adapters behind the service ports (in-memory now; SQLAlchemy next)."""
