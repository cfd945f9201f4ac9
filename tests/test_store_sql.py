"""The store's hot SQL on SQLite and PostgreSQL: the snapshot's read through the driver's cursor
(msnp6.store.raw) gives the same rows as SQLAlchemy's execution and what a login learns of each
contact; its errors stay SQLAlchemy's (an outage is still told apart from a bug; a dropped
connection is replaced); the batched last-login write locks rows in the order list changes do."""
from __future__ import annotations

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from msnp6.store.engine import make_engine
from msnp6.store.faults import outage_reason
from msnp6.store.models import list_entries
from msnp6.store.raw import RawRead
from msnp6.store.schema import upgrade
from msnp6.store.store import _LISTS_WITH_MARKS, StoreCore

ANN, BOB, CAT, DAN = "ann@example.com", "bob@example.com", "cat@example.com", "dan@example.com"


@pytest.fixture
def core(database):
    engine = make_engine(database.url)
    upgrade(engine)
    with engine.begin() as conn:  # a fresh population for each test (the schema is shared)
        conn.execute(text("DELETE FROM list_entries"))
        conn.execute(text("DELETE FROM contact_groups"))
        conn.execute(text("DELETE FROM accounts"))
    store = StoreCore(engine)
    yield store
    engine.dispose()


def test_rows_are_those_sqlalchemy_reads(core):
    ids = {h: core.create_account(h, h.split("@")[0], b"x").id for h in (ANN, BOB, CAT)}
    core.add_entry(ids[ANN], "ann", "FL", BOB, "bob", 150)
    core.add_entry(ids[ANN], "ann", "AL", BOB, "bob", 150)
    core.add_entry(ids[BOB], "bob", "AL", ANN, "ann", 150)
    with core.engine.begin() as conn:  # on both (ADD refuses that with 219; old data may hold it)
        conn.execute(list_entries.insert().values(owner_id=ids[BOB], list="BL", contact=ANN, name="ann"))
    params = {"owner": ids[ANN], "viewer": ANN}
    with core.engine.connect() as conn:
        raw = _LISTS_WITH_MARKS.rows(conn, params)
        by_sqlalchemy = [tuple(r) for r in conn.execute(_LISTS_WITH_MARKS.statement, params).all()]
    assert [tuple(r) for r in raw] == by_sqlalchemy
    assert len(raw) == 3  # FL bob twice (his AL and BL both hold ann), AL bob
    snapshot = core.get_snapshot(ids[ANN])  # SQLite reads the marks apart, PostgreSQL joins them
    assert [e.contact for e in snapshot.lists["FL"]] == [BOB]
    assert not snapshot.contacts[BOB].allows_viewer  # on his BL too: blocked


def test_snapshot_tells_what_the_viewer_may_learn_of_each_contact(core):
    ids = {h: core.create_account(h, h.split("@")[0], b"x").id for h in (ANN, BOB, CAT, DAN)}
    for contact in (BOB, CAT, DAN):
        core.add_entry(ids[ANN], "ann", "FL", contact, contact.split("@")[0], 150)
    core.add_entry(ids[ANN], "ann", "AL", CAT, "cat", 150)
    core.add_entry(ids[BOB], "bob", "AL", ANN, "ann", 150)  # bob lets ann in (his BLP is AL anyway)
    core.add_entry(ids[CAT], "cat", "BL", ANN, "ann", 150)  # cat blocks ann
    core.set_setting(ids[DAN], "blp", "BL")  # dan: only his AL, and ann is not on it
    core.set_property(ids[BOB], "PHH", "555%200100", [])
    core.set_property(ids[BOB], "MOB", "Y", [])
    snapshot = core.get_snapshot(ids[ANN])
    assert snapshot is not None
    assert [e.contact for e in snapshot.lists["FL"]] == [BOB, CAT, DAN]
    assert all(e.groups == (0,) for e in snapshot.lists["FL"])
    assert [e.contact for e in snapshot.lists["AL"]] == [CAT]
    bob, cat, dan = (snapshot.contacts[h] for h in (BOB, CAT, DAN))
    assert (bob.allows_viewer, bob.phone_home, bob.mobile_allowed) == (True, "555%200100", True)
    assert isinstance(bob.mobile_allowed, bool) and not cat.mobile_allowed
    assert (cat.allows_viewer, dan.allows_viewer) == (False, False)


def test_a_failing_read_is_sqlalchemy_s_error_and_an_outage_reads_as_one(core):
    missing = RawRead(select(list_entries.c.id).select_from(text("no_such_table")))
    with core.engine.connect() as conn, pytest.raises(DBAPIError) as caught:
        missing.rows(conn, {})
    assert "no_such_table" in str(caught.value.orig)


def test_a_dropped_connection_is_replaced(core, database):
    if database.backend != "postgresql":
        pytest.skip("a server-side disconnect needs a database server")
    owner = core.create_account(ANN, "ann", b"x").id
    other = make_engine(database.url)
    with core.engine.connect() as conn:
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        conn.commit()
        with other.connect() as admin:  # the server ends this session under the store's feet
            admin.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
            admin.commit()
        with pytest.raises(DBAPIError) as caught:
            _LISTS_WITH_MARKS.rows(conn, {"owner": owner, "viewer": ANN})
    other.dispose()
    assert caught.value.connection_invalidated
    assert outage_reason(caught.value) is not None  # one log line, not a traceback
    assert core.get_snapshot(owner) is not None  # the pool has a new connection


def test_a_login_s_account_reads_match_the_whole_row(core):
    """USR I's lookup and the snapshot's read take only the record's columns, as tuples; they
    must agree with the record made from the whole ``accounts`` row."""
    from msnp6.store.models import accounts
    from msnp6.store.store import _account

    made = core.create_account(ANN, "Ann Ü", b"\x00sealed\xff")
    core.set_property(made.id, "PHM", "555%200100", [])
    core.set_property(made.id, "MOB", "Y", [])
    core.set_disabled(ANN, True, "spam")
    with core.engine.connect() as conn:
        whole = _account(conn.execute(select(accounts).where(accounts.c.id == made.id)).one())
    assert whole.disabled and whole.mobile_allowed and whole.credential == b"\x00sealed\xff"
    snapshot = core.get_snapshot(made.id)
    assert snapshot is not None
    assert core.get_account(ANN) == snapshot.account == whole


def test_last_logins_lock_in_id_order_as_a_list_change_does(core, database):
    """The batched last-login write and an ADD lock accounts in the same (id) order: the ADD's
    second lock does not wait for a row the batch took out of order (PostgreSQL deadlocked)."""
    import threading
    from datetime import UTC, datetime

    if database.backend != "postgresql":
        pytest.skip("row locks: PostgreSQL")
    low, high = core.create_account(ANN, "ann", b"x").id, core.create_account(BOB, "bob", b"x").id
    core.set_verified(ANN, False)  # ann's row now lies after bob's in the table: a scan meets bob first
    other = make_engine(database.url)
    noted: list[BaseException | None] = []
    with other.connect() as change:  # as ADD does: the lower id first, then the higher
        change.exec_driver_sql("SET lock_timeout = '3s'")
        change.exec_driver_sql(f"SELECT id FROM accounts WHERE id = {low} FOR UPDATE")

        def note() -> None:
            try:
                core.note_logins([high, low], datetime.now(UTC))
                noted.append(None)
            except BaseException as e:  # reported below
                noted.append(e)

        batch = threading.Thread(target=note)
        batch.start()
        batch.join(0.5)  # it waits for ann's row, holding nothing it should not
        change.exec_driver_sql(f"SELECT id FROM accounts WHERE id = {high} FOR UPDATE")
        change.commit()
    batch.join(10)
    other.dispose()
    assert noted == [None]
