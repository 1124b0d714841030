"""Test Settings: each store's way out tried for real, as the original's "Test Settings" button did.

A store whose cart takes updates has its connector's ``test_connection`` run
against the cart; a store routed to the OSS (or with a lapsed subscription)
has the ``oss`` connector's run, the one check of an OSS account: does the OSS
answer, is the token good, until when is the subscription paid. Each test says
OK or refused with the reason, every secret of the setup file masked.
``cartstatus test`` and ``cartstatus setup`` run them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from .config import Config, OssSettings, Store
from .connector import ConnectionResult, Connector, reason_text
from .plugins import get_connectors
from .routing import OSS_CONNECTOR, route_for_store


@dataclass(frozen=True)
class SettingsTest:
    """One store's test: what was tried (a connector's name, ``oss``, or ``-`` when nothing could be) and how."""

    store: str
    target: str
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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


async def try_oss(oss: OssSettings, transport: httpx.AsyncBaseTransport | None = None) -> ConnectionResult:
    """The OSS account tried by the ``oss`` connector's connection test."""
    cls = get_connectors().get(OSS_CONNECTOR)
    if cls is None:
        return ConnectionResult(False, f"the OSS connector {OSS_CONNECTOR!r} is not installed (see "
                                       "`cartstatus plugins`)")
    return await try_connector(cls, oss.connector_settings(), transport)


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
