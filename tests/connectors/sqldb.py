"""Databases the sql connector tests run against, and the tables they make.

``database_fixture`` is the ``database`` fixture: SQLite, and PostgreSQL when
``IHOOK_TEST_DATABASE_URL`` names one. A conftest or test module imports it to use it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa

from connectors import SqlConnector, build_connector
from connectors.outbound import OutboundPolicy


@dataclass
class Database:
    """A database to test against; tables get unique names and are dropped afterwards."""

    backend: str
    url: str
    engine: sa.Engine
    metadata: sa.MetaData = field(default_factory=sa.MetaData)

    def create(self, base: str, *columns: Any, **kwargs: Any) -> str:
        name = f"{base}_{uuid.uuid4().hex[:12]}"
        sa.Table(name, self.metadata, *columns, **kwargs).create(self.engine)
        return name

    def rows(self, name: str) -> list[dict[str, Any]]:
        table = self.metadata.tables[name]
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(table).order_by(*table.columns)).mappings().all()
        return [dict(row) for row in rows]

    def connector(self, **config: Any) -> SqlConnector:
        connector = build_connector("sql", {"url": self.url, **config}, policy=OutboundPolicy())
        assert isinstance(connector, SqlConnector)
        return connector


PG_URL = os.environ.get("IHOOK_TEST_DATABASE_URL")
REQUIRE_PG = os.environ.get("IHOOK_REQUIRE_POSTGRES") == "1"


@pytest.fixture(
    name="database", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def database_fixture(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Database]:
    if request.param == "postgres":
        if not PG_URL:
            if REQUIRE_PG:
                pytest.fail("IHOOK_TEST_DATABASE_URL is not set but IHOOK_REQUIRE_POSTGRES=1")
            pytest.skip("no PostgreSQL: set IHOOK_TEST_DATABASE_URL")
        url = PG_URL
    else:
        url = f"sqlite:///{tmp_path / 'data.db'}"
    db = Database(request.param, url, sa.create_engine(url))
    yield db
    db.metadata.drop_all(db.engine)
    db.engine.dispose()


def members(db: Database) -> str:
    return db.create(
        "members",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("email", sa.String(100), nullable=False, unique=True),
        sa.Column("name", sa.String(100)),
        sa.Column("score", sa.Numeric(10, 2)),
        sa.Column("joined_at", sa.DateTime),
        sa.Column("born", sa.Date),
    )


def activities(db: Database) -> str:
    return db.create(
        "activities",
        sa.Column("member_id", sa.Integer, primary_key=True),
        sa.Column("course", sa.String(20), primary_key=True),
        sa.Column("status", sa.String(20)),
    )
