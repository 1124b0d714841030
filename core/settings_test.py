"""Test Settings: each store's way out tried for real, as the original's "Test Settings" button did.

A store whose cart takes updates has its connector's ``test_connection`` run
against the cart; a store routed to the OSS (or with a lapsed subscription)
has the OSS asked about its account: does it answer, is the token good, until
when is the subscription paid. Each test says OK or refused with the reason,
every secret of the setup file masked. ``cartstatus test`` and ``cartstatus
setup`` run them.

The OSS's account endpoint, ``GET {oss.url}/api/v1/account`` with the store's
bearer token, answers 200 ``{"merchant": ..., "expires":
"YYYY-MM-DD", ...}``, 401 for an unknown or revoked token, 402 with the end date
(``expires``) for a lapsed subscription.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from .config import Config, OssSettings, Store
from .connector import ConnectionResult, Connector, outcome_for_transport_error, reason_text
from .plugins import get_connectors
from .routing import OSS_CONNECTOR, route_for_store

#: The account endpoint of the OSS.
ACCOUNT_PATH = "/api/v1/account"
#: Seconds the OSS has to answer.
OSS_TIMEOUT = 30.0


@dataclass(frozen=True)
class SettingsTest:
    """One store's test: what was tried (a connector's name, ``oss``, or ``-`` when nothing could be) and how."""

    store: str
    target: str
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _date(value: Any) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def account_result(oss: OssSettings, response: httpx.Response, today: dt.date | None = None) -> ConnectionResult:
    """What the OSS's answer about the store's account means (see the module's description of the endpoint)."""
    code = response.status_code
    reply = _json_object(response)
    merchant = oss.merchant
    if code == 401:
        return ConnectionResult(False, f"the OSS refused the token of merchant {merchant} (unknown or revoked): "
                                       "ask the OSS operator for a new token (cartstatus-oss accounts rotate-token) "
                                       "and put it in the store's oss.token")
    if code == 402:
        ended = _date(reply.get("expires"))
        return ConnectionResult(False, f"the OSS subscription of merchant {merchant} lapsed (ended "
                                       f"{ended or 'on an earlier date'}): renew it with the OSS operator, then set "
                                       "the store's oss.subscription_expires to the new end date")
    if code == 404:
        return ConnectionResult(False, f"{oss.url} has no OSS account endpoint ({ACCOUNT_PATH}, HTTP 404): check "
                                       "the store's oss.url (the OSS's address), and that the OSS is up to date")
    if code != 200:
        said = str(reply.get("message") or "").strip()
        return ConnectionResult(False, f"HTTP {code} from the OSS at {oss.url}" + (f": {said}" if said else ""))
    until = _date(reply.get("expires"))
    if not isinstance(reply.get("merchant"), str) or until is None:
        return ConnectionResult(False, f"the OSS at {oss.url} answered 200 without its account reply (merchant and "
                                       "expires): check the store's oss.url")
    if reply["merchant"] != merchant:
        return ConnectionResult(False, f"the token belongs to merchant {reply['merchant']}, not {merchant}: check "
                                       "the store's oss.merchant and oss.token")
    if until < (today or dt.date.today()):
        return ConnectionResult(False, f"the OSS subscription of merchant {merchant} lapsed (ended {until}): renew "
                                       "it with the OSS operator")
    if until != oss.subscription_expires:
        # Routing goes by the setup file's date: a wrong one sends too long or stops too soon.
        return ConnectionResult(False, f"the OSS has merchant {merchant}'s subscription until {until}, the setup "
                                       f"file says {oss.subscription_expires}: set the store's "
                                       f"oss.subscription_expires: {until}")
    return ConnectionResult(True, f"merchant {merchant}, subscription until {until}")


async def try_oss(oss: OssSettings, transport: httpx.AsyncBaseTransport | None = None) -> ConnectionResult:
    """Ask the OSS about the store's account with its token."""
    headers = {"Authorization": f"Bearer {oss.token.reveal()}", "Accept": "application/json"}
    async with httpx.AsyncClient(transport=transport, timeout=OSS_TIMEOUT) as client:
        try:
            response = await client.get(f"{oss.url}{ACCOUNT_PATH}", headers=headers)
        except httpx.HTTPError as exc:
            return ConnectionResult(False, f"the OSS at {oss.url} did not answer: "
                                           f"{outcome_for_transport_error(exc).reason}")
    return account_result(oss, response)


async def try_connector(cls: type[Connector], settings: dict[str, Any],
                         transport: httpx.AsyncBaseTransport | None = None) -> ConnectionResult:
    """The connector's own ``test_connection``, ended after its timeout; whatever it raises is a refusal.

    The detail comes scrubbed by the connector (it knows the secrets it obtained, a login's token).
    """
    connector = cls(settings, transport=transport)
    try:
        timeout = connector.timeout_for(connector.settings)
        try:
            result = await asyncio.wait_for(connector.test_connection(), timeout)
        except TimeoutError:
            return ConnectionResult(False, f"no answer within {timeout:g} s")
        if not isinstance(result, ConnectionResult):
            return ConnectionResult(False, f"connector {cls.name!r} answered its test with {type(result).__name__}, "
                                           "not a ConnectionResult")
        return ConnectionResult(result.ok, connector.scrub(str(result.detail)))
    except Exception as exc:  # a third party's connector: its failure is this store's, not the command's
        return ConnectionResult(False, connector.scrub(f"connector {cls.name!r} failed its test: "
                                                       f"{type(exc).__name__}: {exc}"))
    finally:
        await connector.aclose()


async def _try_store(config: Config, store: Store, transport: httpx.AsyncBaseTransport | None) -> SettingsTest:
    route = route_for_store(store, matrix_extra=config.matrix_extra)
    if route.kind == "native":
        assert route.connector is not None
        cls = get_connectors()[route.connector]
        result = await try_connector(cls, store.connector, transport)
        target = route.connector
    elif store.oss is not None:  # routed to the OSS, or lapsed in the setup file: the OSS may know better
        result = await try_oss(store.oss, transport)
        target = OSS_CONNECTOR
    else:
        result, target = ConnectionResult(False, route.reason), "-"
    return SettingsTest(store.id, target, result.ok, reason_text(config.secret_mask(result.detail)))


async def _try_all(config: Config, stores: Sequence[Store],
                    transport: httpx.AsyncBaseTransport | None) -> list[SettingsTest]:
    return list(await asyncio.gather(*(_try_store(config, store, transport) for store in stores)))


def run_settings_test(config: Config, store_ids: Sequence[str] = (),
                  transport: httpx.AsyncBaseTransport | None = None) -> list[SettingsTest]:
    """Test each store (or the named ones, in the order named) at once; a name not in the file raises KeyError."""
    stores = [config.store(sid) for sid in store_ids] if store_ids else list(config.stores.values())
    return asyncio.run(_try_all(config, stores, transport))
