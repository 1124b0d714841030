"""Finding a cart by whatever name support staff type, and answering "can it take status updates?"."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from .loader import OSS_CONNECTOR, CartRow, Matrix, normalize

#: How close a misspelling must be (difflib ratio) to be taken as a cart.
MATCH_CUTOFF = 0.8
#: How close a name must be to be suggested.
SUGGEST_CUTOFF = 0.5

EXIT_DIRECT = 0
EXIT_NEEDS_OSS = 1
EXIT_UNKNOWN = 3


@dataclass(frozen=True)
class Lookup:
    """What a name matched: the row (or None), how, and the closest names otherwise."""

    query: str
    row: CartRow | None
    matched_by: str | None  # key, name, alias, fuzzy
    suggestions: tuple[str, ...] = ()


def find_cart(matrix: Matrix, query: str) -> Lookup:
    """Match ``query`` forgivingly: case, spaces and punctuation ignored, aliases, then close misspellings."""
    wanted = normalize(query)
    if not wanted:
        return Lookup(query, None, None, ())
    row = matrix.by_name(query)
    if row is not None:
        if wanted == normalize(row.key):
            how = "key"
        elif wanted == normalize(row.name):
            how = "name"
        else:
            how = "alias"
        return Lookup(query, row, how)
    names = matrix.names()
    scored = sorted(((difflib.SequenceMatcher(None, wanted, n).ratio(), n) for n in names), reverse=True)
    # A name that starts with what was typed ("big" for BigCommerce) is a good suggestion too.
    prefixed = [n for n in names if len(wanted) >= 3 and n.startswith(wanted)]
    best_rows: dict[str, float] = {}
    for score, n in scored:
        key = names[n]
        best_rows[key] = max(best_rows.get(key, 0.0), score)
    ranked = sorted(best_rows.items(), key=lambda kv: (-kv[1], kv[0]))
    if ranked and ranked[0][1] >= MATCH_CUTOFF and (len(ranked) == 1 or ranked[1][1] < ranked[0][1]):
        return Lookup(query, matrix.rows[ranked[0][0]], "fuzzy")
    suggested = [k for k, s in ranked if s >= SUGGEST_CUTOFF]
    suggested += [names[n] for n in prefixed if names[n] not in suggested]
    return Lookup(query, None, None, tuple(matrix.rows[k].key for k in suggested[:5]))


@dataclass
class Answer:
    """``matrix check``'s answer: one sentence, its facts and the exit status."""

    lookup: Lookup
    sentence: str
    exit_status: int
    facts: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        row = self.lookup.row
        return {
            "query": self.lookup.query,
            "match": row.key if row else None,
            "matched_by": self.lookup.matched_by,
            "suggestions": list(self.lookup.suggestions),
            **self.facts,
            "answer": self.sentence,
            "exit_status": self.exit_status,
        }


def _clause(text: str) -> str:
    return text.strip().rstrip(".")


def answer(matrix: Matrix, query: str) -> Answer:
    """Whether and how the cart takes status updates, which connector, installed or not, OSS or not, caveats."""
    look = find_cart(matrix, query)
    row = look.row
    if row is None:
        hint = (f"; the closest are: {', '.join(look.suggestions)}" if look.suggestions
                else "; see `cartstatus matrix list` for every cart")
        return Answer(look, f"No cart in the shopping-cart matrix matches {query!r}{hint}.", EXIT_UNKNOWN,
                      {"takes_updates_directly": None, "oss_needed": None})
    blocked = row.why_not_native(matrix.installed)
    direct = blocked is None
    lead = f"{row.name} ({row.key})"
    if look.matched_by == "fuzzy":
        lead = f"Taking {query!r} to mean {row.name} ({row.key}): it"
    if direct:
        body = (f"{lead} takes status updates {row.how}; connector {row.connector!r} sends them and is "
                f"installed, so the OSS is not needed")
    elif row.takes_updates:
        if row.connector is None:
            body = (f"{lead} takes status updates {row.how}"
                    + (f" ({_clause(row.api)})" if row.api else "")
                    + ", but no cartstatus connector for it is installed, so the OSS is needed for now")
        else:
            body = (f"{lead} takes status updates {row.how}; its connector {row.connector!r} is not "
                    f"installed, so the OSS is needed until it is")
    elif row.updates == "batch_file":
        body = (f"{lead} takes status updates {row.how}"
                + (f" ({_clause(row.api)})" if row.api else "")
                + ", which no connector sends, so the OSS is needed")
    else:
        body = f"{lead} cannot take status updates, so the OSS is needed"
    if look.matched_by == "fuzzy":
        body = body[0].upper() + body[1:]
    caveats = [_clause(c) for c in row.caveats]
    if row.verified is None:
        caveats.append("this row is not verified against a source")
    sentence = body + (f"; caveats: {'; '.join(caveats)}." if caveats else ".")
    facts = {
        "key": row.key,
        "name": row.name,
        "updates": row.updates,
        "api": row.api,
        "connector": row.connector,
        "connector_installed": row.connector_installed(matrix.installed),
        "oss_connector_installed": OSS_CONNECTOR in matrix.installed,
        "takes_updates_directly": direct,
        "oss_needed": not direct,
        "caveats": list(row.caveats),
        "verified": row.verified.isoformat() if row.verified else None,
        "sources": list(row.sources),
    }
    return Answer(look, sentence, EXIT_DIRECT if direct else EXIT_NEEDS_OSS, facts)
