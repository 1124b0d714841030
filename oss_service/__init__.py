"""The hosted Order Status System (OSS): stores push status updates, shoppers look their order up.

``cartstatus-oss serve`` runs it; ``cartstatus-oss accounts`` manages stores.
"""

from .app import ServerSettings, create_app
from .service import Account, AccountError, OrderView, OssStore, sanitize_html, tracking_url
from .storage import migrate, open_oss_database
from .wire import WIRE_VERSION, WireError, payload_for, validate, wire_schema

__all__ = [
    "WIRE_VERSION",
    "Account",
    "AccountError",
    "OrderView",
    "OssStore",
    "ServerSettings",
    "WireError",
    "create_app",
    "migrate",
    "open_oss_database",
    "payload_for",
    "sanitize_html",
    "tracking_url",
    "validate",
    "wire_schema",
]
