"""``cartstatus-oss accounts``: tokens shown once and kept only as a hash."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from cartstatus.oss.cli import main
from cartstatus.oss.service import Account, OssStore, hash_token
from cartstatus.oss.storage import open_oss_database
from click.testing import CliRunner


def account_for(store: OssStore, token: str) -> Account | None:
    return asyncio.run(store.account_for_hash(hash_token(token)))


@pytest.fixture
def run(tmp_path: Path):  # type: ignore[no-untyped-def]
    db = f"sqlite:///{tmp_path / 'cli.db'}"

    def invoke(*args: str, ok: bool = True):  # type: ignore[no-untyped-def]
        result = CliRunner().invoke(main, [*args, "--db", db])
        if ok:
            assert result.exit_code == 0, result.output
        return result

    invoke.db = db  # type: ignore[attr-defined]
    invoke.path = tmp_path / "cli.db"  # type: ignore[attr-defined]
    return invoke


def test_create_prints_the_token_once_and_stores_only_its_hash(run) -> None:  # type: ignore[no-untyped-def]
    created = json.loads(run("accounts", "create", "acme", "--expires", "2027-01-31", "--json").output)
    token = created["token"]
    assert token.startswith("oss_") and len(token) > 40
    assert created["merchant"] == "acme" and created["expires"] == "2027-01-31"
    assert token.encode() not in run.path.read_bytes()
    listed = run("accounts", "list", "--json").output
    assert token not in listed and json.loads(listed)[0]["merchant"] == "acme"
    store = OssStore(open_oss_database(run.db))
    assert account_for(store, token) is not None

    plain = run("accounts", "create", "bolt", "--expires", "2027-01-31").output
    assert "shown this once" in plain
    table = run("accounts", "list").output
    assert "acme" in table and "bolt" in table and token not in table


def test_renew_revoke_and_rotate(run) -> None:  # type: ignore[no-untyped-def]
    token = json.loads(run("accounts", "create", "acme", "--expires", "2027-01-31", "--json").output)["token"]
    store = OssStore(open_oss_database(run.db))
    assert json.loads(run("accounts", "renew", "acme", "--expires", "2028-02-29", "--json").output)["expires"] \
        == "2028-02-29"
    run("accounts", "revoke", "acme")
    assert account_for(store, token).revoked  # type: ignore[union-attr]
    assert "revoked" in run("accounts", "list").output
    fresh = json.loads(run("accounts", "rotate-token", "acme", "--json").output)["token"]
    assert fresh != token
    assert account_for(store, token) is None
    account = account_for(store, fresh)
    assert account is not None and not account.revoked


def test_mistakes_are_explained(run) -> None:  # type: ignore[no-untyped-def]
    bad_date = run("accounts", "create", "acme", "--expires", "2027-02-30", ok=False)
    assert bad_date.exit_code == 2 and "expected YYYY-MM-DD" in bad_date.output
    bad_name = run("accounts", "create", "Acme Co", "--expires", "2027-01-31", ok=False)
    assert bad_name.exit_code == 1 and "lower-case letters" in bad_name.output
    run("accounts", "create", "acme", "--expires", "2027-01-31")
    twice = run("accounts", "create", "acme", "--expires", "2027-01-31", ok=False)
    assert twice.exit_code == 1 and "already has an account" in twice.output
    unknown = run("accounts", "renew", "nobody", "--expires", "2027-01-31", ok=False)
    assert unknown.exit_code == 1 and "no account for merchant 'nobody'" in unknown.output


def test_an_error_prints_brackets_as_given(run) -> None:  # type: ignore[no-untyped-def]
    # Rich would take "[red]" for markup and drop it from the message.
    result = run("accounts", "renew", "[red]x[/red]", "--expires", "2027-01-31", ok=False)
    assert result.exit_code == 1 and "no account for merchant '[red]x[/red]'" in result.output


def test_page_and_snippet(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run("accounts", "create", "acme", "--expires", "2027-01-31")
    header = tmp_path / "header.html"
    header.write_text("<b>Acme</b><script>x()</script>")
    run("accounts", "update", "acme", "--header", str(header), "--display-name", "Acme Shop")
    account = OssStore(open_oss_database(run.db)).account("acme")
    assert account.header_html == "<b>Acme</b>" and account.name == "Acme Shop"
    snippet = run("accounts", "snippet", "acme", "--base-url", "https://status.example.com/").output
    assert 'action="https://status.example.com/status/acme"' in snippet


def test_migrate_reports_the_revision(run) -> None:  # type: ignore[no-untyped-def]
    assert "from empty to oss0003" in run("migrate").output
    assert "is at the newest revision (oss0003)" in run("migrate").output
