"""Dates as people write them: quoted or not, accepted; a wrong one named as written, never as Python shows it."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from cartstatus import load_config
from cartstatus.cli import main
from click.testing import CliRunner

#: The README's OSS store, the end date left to the test.
OSS_STORE = """\
system:
  UseStatusUpdates: true
stores:
  - id: outlet
    cart: americart
    oss: {{url: "https://oss.example", merchant: outlet, token: {{$file: oss-token.txt}}, subscription_expires: {date}}}
"""
#: What Python shows that a person never wrote: reprs of dates, bytes, None, booleans, dicts.
PYTHON_REPR = re.compile(r"datetime\.|\bNone\b|\bTrue\b|\bFalse\b|b'|\{'")


def check(tmp_path: Path, text: str) -> tuple[int, str]:
    (tmp_path / "oss-token.txt").write_text("a-token\n")
    setup = tmp_path / "cartstatus.yaml"
    setup.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(main, ["--config", str(setup), "check"])
    return result.exit_code, result.output


@pytest.mark.parametrize("written", ["2027-11-30", "'2027-11-30'", '"2027-11-30"', "!!timestamp 2027-11-30"])
def test_a_date_is_accepted_quoted_or_not(written: str, tmp_path: Path) -> None:
    code, output = check(tmp_path, OSS_STORE.format(date=written))
    assert code == 0, output
    oss = load_config(tmp_path / "cartstatus.yaml").store("outlet").oss
    assert oss is not None and oss.subscription_expires == dt.date(2027, 11, 30)


def test_the_issue_s_unquoted_date_no_longer_says_datetime_date(tmp_path: Path) -> None:
    # Before: "stores[1].oss.subscription_expires: datetime.date(2027, 11, 30) is not of type 'string'".
    code, output = check(tmp_path, OSS_STORE.format(date="2027-11-30"))
    assert (code, "datetime" in output) == (0, False)


@pytest.mark.parametrize(("written", "said"), [
    ("2027-02-30", "'2027-02-30' is not valid: expected the subscription's last day, a date YYYY-MM-DD such as "
                   "2027-11-30 (quoted or not)"),
    ("!!timestamp 2027-02-30", "'2027-02-30' is not valid: expected the subscription's last day"),
    ("2027-11-30 10:00", "'2027-11-30 10:00' is not valid: expected the subscription's last day, a date YYYY-MM-DD"),
    ("!!timestamp 2027-11-30T10:00:00Z", "'2027-11-30T10:00:00Z' is not valid: expected"),
    ("30/11/2027", "'30/11/2027' is not valid: expected"),
    ("20271130", "20271130 is not text (expected the subscription's last day, a date YYYY-MM-DD"),
    ("", "an empty value is not text (expected the subscription's last day"),
    ("[2027, 11, 30]", "a list is not text"),
    ("!!binary MjAyNy0xMS0zMA==", "a !!binary value cannot be used here"),
])
def test_a_wrong_date_is_named_as_written(written: str, said: str, tmp_path: Path) -> None:
    code, output = check(tmp_path, OSS_STORE.format(date=written))
    assert code == 2
    assert f"cartstatus.yaml:6: stores[0].oss.subscription_expires: {said}" in " ".join(output.split())
    assert not PYTHON_REPR.search(output), output


@pytest.mark.parametrize(("line", "said"), [
    ("system: {UseStatusUpdates: }", "system.UseStatusUpdates: an empty value is not true or false"),
    ("system: {UseStatusUpdates: maybe}", "system.UseStatusUpdates: 'maybe' is not true or false"),
    ("controller: {concurrency: true}", "controller.concurrency: true is not a whole number"),
    ("controller: {lease_seconds: {a: 1}}", "controller.lease_seconds: a mapping is not a number"),
    ("stack: {url: [a]}", "stack.url: a list is not text"),
])
def test_no_error_shows_a_python_value(line: str, said: str, tmp_path: Path) -> None:
    code, output = check(tmp_path, line + "\n")
    assert code == 2
    assert said in output
    assert not PYTHON_REPR.search(output), output
