"""Delivery statements stay flat as the backlog grows: each finds its rows by key."""

from __future__ import annotations

from sqlalchemy import event

from ihook.services import deliveries as service


def plans_of(platform, work) -> list[str]:
    """SQLite's query plan of each UPDATE that ``work(session)`` runs."""
    statements: list[tuple[str, object]] = []

    def seen(_conn, _cursor, statement, parameters, _context, _many):
        if statement.startswith("UPDATE deliveries"):
            statements.append((statement, parameters))

    event.listen(platform.db.engine, "before_cursor_execute", seen)
    try:
        with platform.db.session() as session:
            work(session)
    finally:
        event.remove(platform.db.engine, "before_cursor_execute", seen)
    plans = []
    with platform.db.read() as session:
        raw = session.connection().connection.driver_connection
        for statement, parameters in statements:
            sql = "EXPLAIN QUERY PLAN " + statement.split(" RETURNING")[0]
            plans.append(" / ".join(row[-1] for row in raw.execute(sql, parameters)))
    return plans


def test_claims_put_offs_and_failures_use_the_primary_key_not_the_backlog(platform):
    ids = ["dlv_a", "dlv_b"]
    plans = plans_of(
        platform,
        lambda session: (
            service.claim_many(session, ids, timeout=10),
            service.put_off(session, ids, until=service.utcnow()),
            service.fail_unsent(session, ids, "test"),
        ),
    )
    assert len(plans) == 3
    for plan in plans:  # not ix_deliveries_status_next: that walks every pending row
        assert plan.startswith("SEARCH deliveries USING INDEX sqlite_autoindex_deliveries_1"), plan
