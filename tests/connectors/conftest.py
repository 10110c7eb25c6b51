"""Fixtures for connector tests: ``database`` for the sql connector (SQLite, and PostgreSQL
when ``IHOOK_TEST_DATABASE_URL`` names one)."""

from tests.connectors.sqldb import database_fixture  # noqa: F401
