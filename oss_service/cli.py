"""The ``cartstatus-oss`` command: run the hosted OSS and manage its store accounts."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from cartstatus.terminal import fail
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from .links import PREVIOUS_SECRET_ENV, SECRET_ENV, check_secret, new_secret
from .logs import LOG_LEVEL_ENV
from .looks import PageLook, save_look, valid_accent, valid_logo_url
from .progress import PLACES, parse_step
from .service import Account, AccountError, OssStore
from .storage import DB_ENV, DEFAULT_DB, current_revision, head_revision, migrate, open_oss_database

console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def db_option(fn: F) -> F:
    return click.option("--db", "db", envvar=DB_ENV, default=DEFAULT_DB, show_default=True,
                        help=f"Database URL: sqlite:///PATH or postgresql://USER@HOST/DB (env {DB_ENV}).")(fn)


def json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(fn)


def _safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(the --db URL)"


def _store(db: str) -> OssStore:
    try:
        return OssStore(open_oss_database(db))
    except OperationalError as exc:
        fail(f"cannot open the OSS database {_safe_url(db)}: {exc.orig}")
    except SQLAlchemyError as exc:
        fail(f"cannot use the OSS database {_safe_url(db)}: {type(exc).__name__}")


def _on_store(db: str, change: Callable[[OssStore], T]) -> T:
    """``change`` on the OSS database at ``db``; a refused change (AccountError) is the error line."""
    try:
        return change(_store(db))
    except AccountError as exc:
        fail(str(exc))


class _Date(click.ParamType):
    name = "YYYY-MM-DD"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> dt.date:
        if isinstance(value, dt.date):
            return value
        try:
            return dt.date.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is not a date; expected YYYY-MM-DD", param, ctx)


DATE = _Date()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cartstatus")
def main() -> None:
    """The hosted Order Status System (OSS): stores push status updates, shoppers look orders up."""


# -- serve -----------------------------------------------------------------

@main.command()
@db_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int, help="Port to listen on.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Worker processes (use PostgreSQL with more than one).")
@click.option("--max-body", default=64 * 1024, show_default=True, type=click.IntRange(256),
              help="Largest update body in bytes (413 beyond).")
@click.option("--ingest-rate", default=50.0, show_default=True, type=click.FloatRange(min=0.01),
              help="Updates per second allowed per store token (429 beyond).")
@click.option("--lookup-rate", default=30.0, show_default=True, type=click.FloatRange(min=0.01),
              help="Shopper lookups per minute allowed per client address.")
@click.option("--forwarded-allow-ips", default="", show_default="none",
              help="Proxies (comma-separated addresses) whose X-Forwarded-For gives the client address; "
                   "none by default: the address that connected is the client's.")
@click.option("--link-secret", envvar=SECRET_ENV, show_envvar=True, metavar="SECRET",
              help="Signs the order links updates are answered with (status_url); at least 32 characters, from "
                   "`cartstatus-oss link-secret`. Changing it revokes the links made with it. Without it, a "
                   "random one lasts until the server stops.")
@click.option("--previous-link-secret", envvar=PREVIOUS_SECRET_ENV, show_envvar=True, metavar="SECRET",
              help="The link secret before the last change: its links still open (never used to sign).")
@click.option("--public-url", metavar="URL",
              help="The address shoppers reach the OSS at, for the links (default: the address each update "
                   "was sent to).")
@click.option("--no-migrate", is_flag=True, help="Do not apply database migrations at start.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]), help="Log level.")
def serve(db: str, host: str, port: int, workers: int, max_body: int, ingest_rate: float, lookup_rate: float,
          forwarded_allow_ips: str, link_secret: str | None, previous_link_secret: str | None,
          public_url: str | None, no_migrate: bool, log_level: str) -> None:
    """Run the OSS server (uvicorn), after applying migrations."""
    import uvicorn

    from .settings import ServerSettings

    if link_secret:
        _valid("--link-secret", check_secret, link_secret)
    else:
        link_secret = new_secret()
        err_console.print(f"[yellow]warning:[/] no --link-secret (env {SECRET_ENV}): the order links made now "
                          "stop working when the server stops; make one with `cartstatus-oss link-secret`")
    if previous_link_secret:
        _valid("--previous-link-secret", check_secret, previous_link_secret)
    if public_url and not public_url.startswith(("https://", "http://")):
        fail(f"--public-url: {public_url!r} is not an http(s) address, e.g. https://status.example.com")
    if workers > 1 and db.startswith("sqlite"):
        err_console.print("[yellow]warning:[/] several workers on SQLite share one writer lock; "
                          "PostgreSQL suits more than one worker")
    if not no_migrate:
        store = _store(db)
        store.engine.dispose()
    settings = ServerSettings(db_url=db, max_body=max_body, ingest_rate=ingest_rate,
                              ingest_burst=max(1.0, ingest_rate * 4), lookup_rate_per_minute=lookup_rate,
                              link_secret=link_secret,
                              previous_link_secrets=(previous_link_secret,) if previous_link_secret else (),
                              public_url=public_url.rstrip("/") if public_url else None)
    settings.to_env()
    # The application factory sets up the log (stderr, lines in batches: oss_service/logs.py) in each worker.
    os.environ[LOG_LEVEL_ENV] = log_level
    click.echo(err=True, message=f"OSS serving {_safe_url(db)} on http://{host}:{port} ({workers} worker(s))")
    # uvicorn's own access log prints query strings (lookups carry emails): ours does not.
    uvicorn.run("cartstatus.oss.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                access_log=False, proxy_headers=bool(forwarded_allow_ips),
                forwarded_allow_ips=forwarded_allow_ips or None,
                server_header=False, log_level=log_level)


@main.command("link-secret")
def link_secret_command() -> None:
    """Print a new random link secret, for `serve --link-secret` (env CARTSTATUS_OSS_LINK_SECRET)."""
    click.echo(new_secret())


@main.command("migrate")
@db_option
def migrate_command(db: str) -> None:
    """Apply the OSS database migrations (serve does this at start too)."""
    try:
        engine = open_oss_database(db, run_migrations=False)
        before = current_revision(engine)
        applied = migrate(engine)
    except SQLAlchemyError as exc:
        fail(f"cannot migrate {_safe_url(db)}: {type(exc).__name__}: {getattr(exc, 'orig', exc)}")
    head = head_revision()
    if applied:
        click.echo(f"migrated {_safe_url(db)} from {before or 'empty'} to {head}")
    else:
        click.echo(f"{_safe_url(db)} is at the newest revision ({head})")


# -- accounts --------------------------------------------------------------

@main.group()
def accounts() -> None:
    """Store accounts: create, list, renew, revoke, rotate-token, update, snippet."""


def _print_token(account: Account, token: str, as_json: bool, action: str) -> None:
    if as_json:
        click.echo(json.dumps({**account.as_dict(), "token": token}))
        return
    click.echo(f"{action} account {account.merchant} (subscription until {account.expires}).")
    click.echo("Its token, shown this once (only a hash is kept); put it in the store's oss.token in "
               "cartstatus.yaml:")
    click.echo(token)


@accounts.command("create")
@click.argument("merchant")
@click.option("--expires", required=True, type=DATE, help="Last day of the subscription (YYYY-MM-DD).")
@click.option("--name", help="The store's name as shoppers see it.")
@db_option
@json_option
def accounts_create(merchant: str, expires: dt.date, name: str | None, db: str, as_json: bool) -> None:
    """Create MERCHANT's account and print its new token (once)."""
    account, token = _on_store(db, lambda store: store.create_account(merchant, expires, name))
    _print_token(account, token, as_json, "Created")


@accounts.command("list")
@db_option
@json_option
def accounts_list(db: str, as_json: bool) -> None:
    """List the accounts with their subscription end dates (never their tokens)."""
    store = _store(db)
    rows = store.list_accounts()
    if as_json:
        click.echo(json.dumps([a.as_dict() for a in rows], indent=2))
        return
    if not rows:
        console.print("no accounts yet: cartstatus-oss accounts create MERCHANT --expires YYYY-MM-DD")
        return
    table = Table("merchant", "name", "expires", "state", "token starts")
    today = dt.date.today()
    for a in rows:
        state = "revoked" if a.revoked else ("active" if a.active(today) else "lapsed")
        table.add_row(a.merchant, a.name, a.expires.isoformat(), state, a.token_hint + "...")
    console.print(table)


@accounts.command("renew")
@click.argument("merchant")
@click.option("--expires", required=True, type=DATE, help="The new last day of the subscription (YYYY-MM-DD).")
@db_option
@json_option
def accounts_renew(merchant: str, expires: dt.date, db: str, as_json: bool) -> None:
    """Set MERCHANT's subscription end date."""
    account = _on_store(db, lambda store: store.renew(merchant, expires))
    click.echo(json.dumps(account.as_dict()) if as_json else f"{merchant}: subscription until {account.expires}")


@accounts.command("revoke")
@click.argument("merchant")
@db_option
@json_option
def accounts_revoke(merchant: str, db: str, as_json: bool) -> None:
    """Refuse MERCHANT's token from now on and hide its shopper page (rotate-token restores)."""
    account = _on_store(db, lambda store: store.revoke(merchant))
    click.echo(json.dumps(account.as_dict()) if as_json else
               f"{merchant}: token revoked; `cartstatus-oss accounts rotate-token {merchant}` issues a new one")


@accounts.command("rotate-token")
@click.argument("merchant")
@db_option
@json_option
def accounts_rotate(merchant: str, db: str, as_json: bool) -> None:
    """Issue MERCHANT a new token; the old one stops working at once."""
    account, token = _on_store(db, lambda store: store.rotate_token(merchant))
    _print_token(account, token, as_json, "Rotated the token of")


def _valid(option: str, check: Callable[[str], T], value: str) -> T:
    """``check(value)``, or the error line naming the option."""
    try:
        return check(value)
    except ValueError as exc:
        fail(f"{option}: {exc}")


@accounts.command("update")
@click.argument("merchant")
@click.option("--display-name", help="The store's name as shoppers see it.")
@click.option("--logo-url", metavar="URL", help="The store's logo, an https:// image URL ('' removes it).")
@click.option("--accent", metavar="COLOUR", help="The accent colour of the page, #rgb or #rrggbb ('' for the default).")
@click.option("--step", "steps", multiple=True, metavar="LABEL=PLACE",
              help=f"Place a status label on the progress path; PLACE is one of {', '.join(PLACES)}. May repeat.")
@click.option("--reset-steps", is_flag=True, help="Forget the labels placed with --step (the defaults apply).")
@click.option("--header", "header", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="HTML file shown above the shopper page (sanitised: no scripts or styles).")
@click.option("--footer", "footer", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="HTML file shown below the shopper page (sanitised).")
@db_option
@json_option
def accounts_update(merchant: str, display_name: str | None, logo_url: str | None, accent: str | None,
                    steps: tuple[str, ...], reset_steps: bool, header: Path | None, footer: Path | None, db: str,
                    as_json: bool) -> None:
    """Set how MERCHANT's shopper page looks: name, logo, accent colour, progress steps, header, footer.

    Only what is given changes. A status label the merchant did not place takes
    its place from cartstatus's default labels, then from its words (deliver,
    ship, cancel, backorder, ...), else "processing".
    """
    logo = _valid("--logo-url", valid_logo_url, logo_url) if logo_url else logo_url
    colour = _valid("--accent", valid_accent, accent) if accent else accent
    placed = dict(_valid("--step", parse_step, text) for text in steps)
    try:
        header_html = header.read_text(encoding="utf-8") if header else None
        footer_html = footer.read_text(encoding="utf-8") if footer else None
    except UnicodeDecodeError:
        fail("the header and footer files must be UTF-8 text")

    def change(store: OssStore) -> tuple[Account, PageLook]:
        account = store.set_page(merchant, header_html=header_html, footer_html=footer_html,
                                 display_name=display_name)
        return account, save_look(store.engine, account.id, logo_url=logo, accent=colour, steps=placed,
                                  reset_steps=reset_steps)

    account, look = _on_store(db, change)
    if as_json:
        click.echo(json.dumps({**account.as_dict(), **look.as_dict()}))
    else:
        click.echo(f"{merchant}: shopper page updated")


@accounts.command("snippet")
@click.argument("merchant")
@click.option("--base-url", required=True, help="The OSS's public address, e.g. https://status.example.com")
@db_option
def accounts_snippet(merchant: str, base_url: str, db: str) -> None:
    """Print the HTML lookup form MERCHANT can paste into its own site."""
    from .pages import snippet

    click.echo(snippet(_on_store(db, lambda store: store.account(merchant)), base_url))


if __name__ == "__main__":  # pragma: no cover
    main()
