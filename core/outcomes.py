"""The typed outcomes a connector returns for one status update.

Modelled on OCA queue_job: the stack controller decides what to do with a
record only from the outcome's type, never by parsing messages.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Delivered:
    """The cart or OSS answered with its success reply: the record leaves the stack.

    ``link``: a page about the order the destination answered with (the OSS's signed
    ``status_url``), kept in the history for ``orders show``, emails and carts.
    """

    detail: str = ""
    link: str | None = None


@dataclass(frozen=True)
class AlreadyDone:
    """The cart already had this change (a repeat delivery): the record leaves the stack."""

    detail: str = ""
    link: str | None = None


@dataclass(frozen=True)
class RetryLater:
    """A transient fault: try again, no sooner than ``delay`` seconds when the cart said so."""

    reason: str
    delay: float | None = None


@dataclass(frozen=True)
class Failed:
    """A permanent fault: park the record with the reason for a person to act on."""

    reason: str


Outcome = Delivered | AlreadyDone | RetryLater | Failed

#: Outcomes after which the record is deleted from the stack.
SUCCESS = (Delivered, AlreadyDone)


def outcome_detail(outcome: Delivered | AlreadyDone) -> str:
    """What the change's history keeps of a success: the cart's words beyond OK, and whether it had it already."""
    if isinstance(outcome, AlreadyDone):
        return f"the cart already had it: {outcome.detail}" if outcome.detail else "the cart already had it"
    return outcome.detail

__all__ = ["SUCCESS", "AlreadyDone", "Delivered", "Failed", "Outcome", "RetryLater", "outcome_detail"]
