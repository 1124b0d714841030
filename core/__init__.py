"""cartstatus: carries order status changes to shopping carts or the hosted OSS."""

from .auth import HeaderAuth, LoginFailed, Token, TokenLogin
from .config import Config, ConfigError, StatusEvent, Store
from .connector import ConnectionResult, Connector, RateLimit, StatusUpdate, StopSend, Tracking
from .controller import StackController
from .engine import FireResult, StatusEngine
from .hookspecs import hookimpl
from .outcomes import AlreadyDone, Delivered, Failed, Outcome, RetryLater
from .routing import Route, load_config, route_for_store
from .secrets import Secret
from .stack import Stack, StackRecord, StackStatus

__version__ = "0.1.0"

__all__ = [
    "AlreadyDone",
    "Config",
    "ConfigError",
    "ConnectionResult",
    "Connector",
    "Delivered",
    "Failed",
    "FireResult",
    "HeaderAuth",
    "LoginFailed",
    "Outcome",
    "RateLimit",
    "RetryLater",
    "Route",
    "Secret",
    "Stack",
    "StackController",
    "StackRecord",
    "StackStatus",
    "StatusEngine",
    "StatusEvent",
    "StatusUpdate",
    "StopSend",
    "Store",
    "Token",
    "TokenLogin",
    "Tracking",
    "hookimpl",
    "load_config",
    "route_for_store",
]
