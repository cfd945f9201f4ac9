"""``msnp6-admin user import``: accounts from another server's CSV, over the real command line
against SQLite and PostgreSQL (logins through the running server), and the parser alone."""
from __future__ import annotations

import secrets

from msnp6.accounts_import import Rejected, Row, batches, parse
from msnp6.testing import run_admin


def _handle(tag: str) -> str:
    return f"imp-{tag}-{secrets.token_hex(4)}@example.com"


def test_import_creates_the_good_lines_and_reports_each_bad_one(server, database, key_file, tmp_path):
    ann, bob, cat, old = (_handle(t) for t in ("ann", "bob", "cat", "old"))
    assert run_admin(["user", "add", old], database.url, key_file, "old-pass\n").returncode == 0
    csv_file = tmp_path / "users.csv"
    csv_file.write_text(
        "handle,password,name,verified\n"
        f"{ann.upper()},\"pa,ss\"\"1\",Ann A.\n"           # 2: quoted comma and quote; handle lower-cased
        f"{bob},pw2,Bob,0\n"                                # 3: unverified
        "not-an-address,pw,Nobody\n"                        # 4: bad handle
        f"{ann},pw,Ann again\n"                             # 5: duplicate in the file
        f"{old},new-pass,Old\n"                             # 6: exists already: left alone
        f"{cat},,Cat\n"                                     # 7: empty password
        f"{cat},pw3\n"                                      # 8: two fields
        f"{cat},pw3,Cat,maybe\n"                            # 9: bad flag
        "\n"
        f"{cat},pw3,Cat C.,yes\n",                          # 11: good
        encoding="utf-8")
    r = run_admin(["user", "import", str(csv_file), "--batch-size", "2"], database.url, key_file)
    assert r.returncode == 1, r.stderr
    assert r.stdout.strip() == "created 3 accounts, rejected 6 lines"
    assert r.stderr.splitlines() == [
        "line 4: bad handle 'not-an-address'",
        f"line 5: duplicate: {ann} is on line 2 too",
        f"line 6: {old} already exists",
        f"line 7: {cat}: the password is empty",
        "line 8: expected handle,password,name[,verified], got 2 fields",
        f"line 9: {cat}: the verified flag must be 1/0, true/false or yes/no, not 'maybe'",
    ]
    with server.client() as c:
        assert c.attempt(ann, 'pa,ss"1')[1].line == f"USR 4 OK {ann} Ann%20A. 1"
    with server.client() as c:
        assert c.attempt(bob, "pw2")[1].line == f"USR 4 OK {bob} Bob 0"
    with server.client() as c:
        assert c.attempt(cat, "pw3")[1].line == f"USR 4 OK {cat} Cat%20C. 1"
    with server.client() as c:  # the existing account kept its password
        assert c.attempt(old, "old-pass")[1].line == f"USR 4 OK {old} {old} 1"


def test_import_reads_standard_input_and_says_when_all_went_in(database, key_file):
    handles = [_handle(f"s{i}") for i in range(5)]
    r = run_admin(["user", "import", "-"], database.url, key_file,
                  stdin="".join(f"{h},pw-{i},Name {i}\n" for i, h in enumerate(handles)))
    assert (r.returncode, r.stdout.strip(), r.stderr) == (0, "created 5 accounts, rejected 0 lines", "")
    listed = run_admin(["user", "list"], database.url, key_file).stdout
    assert all(f"{h}\tName%20{i}\tverified" in listed for i, h in enumerate(handles))


def test_import_of_an_unreadable_file_is_one_clear_line(database, key_file, tmp_path):
    r = run_admin(["user", "import", str(tmp_path / "missing.csv")], database.url, key_file)
    assert r.returncode == 1
    assert r.stderr.startswith("msnp6-admin: cannot read ") and "Traceback" not in r.stderr
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"a@example.com,pw,Jos\xe9\n")
    r = run_admin(["user", "import", str(latin)], database.url, key_file)
    assert r.returncode == 1 and "is not UTF-8 text" in r.stderr


def test_parse_and_batches_keep_line_numbers_and_order():
    rows = list(parse(["a@x.com,p1,A\n", "bad,p,B\n", "b@x.com,p2,B,false\n", "c@x.com,p3,C\n"]))
    assert [type(r) for r in rows] == [Row, Rejected, Row, Row]
    assert rows[2] == Row(3, "b@x.com", "B", "p2", False)
    groups = list(batches(rows, 2))
    assert [([r.handle for r in b], [x.line for x in bad]) for b, bad in groups] == [
        (["a@x.com", "b@x.com"], [2]), (["c@x.com"], [])]
    assert "p1" not in repr(rows[0])  # passwords stay out of reprs (and so out of tracebacks)
