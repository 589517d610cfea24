"""A throwaway PostgreSQL database for a bench run, on the server DATABASE_URL names."""

from __future__ import annotations


def _admin_dsn(admin_url: str) -> str:
    return admin_url.replace("postgres://", "postgresql://", 1)


def create_database(admin_url: str, name: str) -> str:
    """Create `name` beside the database of `admin_url`; the URL of the new database."""
    import psycopg

    with psycopg.connect(_admin_dsn(admin_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{admin_url.rpartition('/')[0]}/{name}"


def drop_database(admin_url: str, name: str) -> None:
    """Drop `name` (closing this process's connections first; others are forced out)."""
    import psycopg
    from django.db import connections

    connections.close_all()
    with psycopg.connect(_admin_dsn(admin_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
