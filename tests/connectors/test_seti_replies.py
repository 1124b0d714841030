"""How the seti connector reads a script's reply (issue 8, finding 7; docs/seti.md).

The verdict line is found wherever it stands in the body; only a clean OK is
delivery; an OK with database trouble, or next to a line that disagrees, is
sent again with the script's text; reply text is masked before any cut.
"""

from __future__ import annotations

import httpx
import pytest
from cartstatus import StatusUpdate
from cartstatus.connectors.seti import SetiConnector, protocol
from cartstatus.connectors.seti.simulator import SetiSimulator
from cartstatus.outcomes import Delivered, Failed, Outcome, RetryLater
from cartstatus.secrets import MASK, Secret

PASSWORD = "Tr0ub4dor&3 x=1"
UPDATE = StatusUpdate("k1", "main", "1001", "C1001", "Shipped", "shipped", "New", "Order Shipped",
                      "2025-01-02T03:04:05Z")
OK = "SETIResponse: update=OK;Notes="
NOTICE = "Notice: Undefined index: trackcount in /var/www/seom.php on line 41"
HTML_WARNING = ("<br />\n<b>Warning</b>:  mysqli_query(): (HY000/2006): MySQL server has gone away in "
                "<b>/var/www/seom.php</b> on line <b>88</b><br />")
XML_ERROR = ('<?xml version="1.0"?><Response><ResponseCode>3</ResponseCode>'
             "<ResponseDescription>Login failed &amp; locked</ResponseDescription></Response>")


async def send(body: str, status: int = 200) -> Outcome:
    def reply(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, text=body)

    connector = SetiConnector({"url": "http://cart.test/seom.php", "user": "om", "password": Secret(PASSWORD),
                               "code": "main"}, transport=httpx.MockTransport(reply))
    try:
        return await connector.send(UPDATE)
    finally:
        await connector.aclose()


@pytest.mark.parametrize("body", [
    pytest.param(f"{NOTICE}\n{OK}\n", id="notice-before-ok"),
    pytest.param(f"<br />\n<b>Notice</b>:  Undefined index: trackcount in <b>/var/www/seom.php</b> on line "
                 f"<b>41</b><br />\n{OK}", id="html-notice-before-ok"),
    pytest.param(f"<html><head><title>Store</title></head><body>\n<p>{OK}</p>\n</body></html>", id="html-page"),
    pytest.param(f"<html><body><pre>{OK}</pre></body></html>", id="html-one-line"),
    pytest.param(f"{NOTICE}\r\n{OK}\r\n", id="crlf"),
    pytest.param(f"{OK}\n{OK}\n", id="the-same-ok-twice"),
    pytest.param(f"{OK}\nDeprecated: Function each() is deprecated in /var/www/database.php on line 3",
                 id="harmless-diagnostic-in-a-database-file"),
    pytest.param("SETIRESPONSE=ok;  \r\n", id="upper-equals-crlf"),
])
async def test_finding_7_an_ok_line_anywhere_in_the_body_is_delivery(body: str) -> None:
    assert isinstance(await send(body), Delivered)


@pytest.mark.parametrize(("body", "words"), [
    pytest.param("SETIResponse: OK; Warning: mysql_query(): update failed", "mysql_query(): update failed",
                 id="warning-inside-the-ok-line"),
    pytest.param(f"Warning: mysql_query(): Lost connection to MySQL server in /var/www/seom.php on line 9\n{OK}",
                 "Lost connection to MySQL server", id="warning-on-the-line-before"),
    pytest.param(f"{OK}\r\nWarning: pg_query(): Query failed: ERROR:  relation \"orders\" does not exist\r\n",
                 'relation "orders" does not exist', id="warning-on-the-line-after-crlf"),
    pytest.param(f"<html><body>{HTML_WARNING}\n<p>{OK}</p></body></html>", "MySQL server has gone away",
                 id="html-page-with-a-database-warning"),
    pytest.param(f"Notice: Undefined variable: query in /var/www/seom.php on line 12\n{OK}", "variable: query",
                 id="notice-about-the-query"),
    pytest.param(f"{OK}\nSQLSTATE[40001]: Serialization failure: 1213 Deadlock found", "SQLSTATE[40001]",
                 id="sqlstate"),
    pytest.param(f"{OK}\nPHP Fatal error:  Uncaught Exception: boom in /var/www/seom.php:3", "Uncaught Exception",
                 id="fatal-error"),
    pytest.param(f"{OK}\nSETIResponse: update=False;Notes=Order C1001 could not be found",
                 "update=False;Notes=Order C1001 could not be found", id="ok-then-false"),
    pytest.param(f"SETIError: Database connection failed\n{OK}", "SETIError: Database connection failed",
                 id="error-then-ok"),
    pytest.param(f"{XML_ERROR}\n{OK}", "<ResponseCode>3</ResponseCode>", id="xml-error-and-ok"),
])
async def test_finding_7_an_ok_in_doubt_is_sent_again_with_the_scripts_words(body: str, words: str) -> None:
    outcome = await send(body)
    assert isinstance(outcome, RetryLater), outcome
    assert outcome.reason.startswith("not taken as delivered, sent again: ")
    assert words in outcome.reason


@pytest.mark.parametrize(("body", "kind", "reason"), [
    pytest.param(f"{NOTICE}\nSETIResponse: update=False;Notes=Order C1001 could not be found\r\n", Failed,
                 "the cart refused the update: Order C1001 could not be found", id="notice-before-refusal-crlf"),
    pytest.param("<html><body>\nSETIResponse=False;Note=Status change not allowed\n</body></html>", Failed,
                 "the cart refused the update: Status change not allowed", id="refusal-in-html"),
    pytest.param(f"{NOTICE}\n<b>SETIError: Invalid user name or password</b>", Failed,
                 "the cart script reported an error: Invalid user name or password</b>", id="error-in-html"),
    pytest.param(f"{NOTICE}\n{XML_ERROR}", Failed, "the cart script reported an error: Login failed & locked",
                 id="notice-before-xml-error"),
    pytest.param(XML_ERROR, Failed, "the cart script reported an error: Login failed & locked", id="xml-error"),
    pytest.param('<?xml version="1.0"?><Response><ResponseCode>1</ResponseCode></Response>', RetryLater,
                 "unreadable reply from the script: not a script reply: <?xml", id="xml-without-verdict"),
])
async def test_finding_7_refusals_and_errors_are_read_wherever_they_stand(
        body: str, kind: type[Outcome], reason: str) -> None:
    outcome = await send(body)
    assert isinstance(outcome, kind), outcome
    assert outcome.reason.startswith(reason)  # type: ignore[union-attr]


def test_finding_7_database_trouble_names_the_lines_and_only_those() -> None:
    body = f"{NOTICE}\n{HTML_WARNING}\n{OK}\nSQLSTATE[HY000]: General error"
    assert protocol.database_trouble(body) == (
        "<b>Warning</b>:  mysqli_query(): (HY000/2006): MySQL server has gone away in <b>/var/www/seom.php</b> "
        "on line <b>88</b><br /> | SQLSTATE[HY000]: General error")
    assert protocol.database_trouble(f"{NOTICE}\n{OK}") == ""
    assert protocol.parse_version(f"{NOTICE}\nSETIResponse: version=1.000\n") == "1.000"


@pytest.mark.parametrize("status", [200, 404])
@pytest.mark.parametrize("offset", [60, 180])  # the password across the old 80- and 200-character cuts
async def test_finding_3_a_script_reply_is_masked_before_any_cut(status: int, offset: int) -> None:
    # An error page that echoes the posted form.
    body = f"<html><body>{'.' * offset} form: password={PASSWORD}&setiuser=om</body></html>"
    outcome = await send(body, status)
    assert isinstance(outcome, RetryLater), outcome
    assert f"password={MASK}&setiuser=om</body></html>" in outcome.reason  # the whole reply, masked
    assert PASSWORD[:4] not in outcome.reason


@pytest.mark.parametrize("status", [200, 404])
async def test_a_long_reply_is_bounded_generously(status: int) -> None:
    outcome = await send("x" * 200_000, status)
    assert isinstance(outcome, RetryLater)
    assert 64 * 1024 <= len(outcome.reason) < 64 * 1024 + 200


async def test_finding_7_the_simulator_notice_is_delivered_and_its_failed_query_sent_again() -> None:
    simulator = SetiSimulator(password=PASSWORD)
    simulator.add_order("C1001")
    simulator.fail_next("db_warning")
    simulator.fail_next("notice")
    connector = SetiConnector({"url": "http://cart.test/seom.php", "user": "om", "password": Secret(PASSWORD),
                               "code": "main"}, transport=httpx.ASGITransport(app=simulator.app()))
    try:
        first = await connector.send(UPDATE)
        assert isinstance(first, RetryLater) and "Lock wait timeout exceeded" in first.reason
        assert simulator.order_state("C1001") == {"status": "New", "tracking": []}
        assert isinstance(await connector.send(UPDATE), Delivered)  # after a harmless notice
    finally:
        await connector.aclose()
    assert simulator.order_state("C1001") == {"status": "shipped", "tracking": []}


async def test_a_garbled_reply_makes_a_reason_any_database_stores() -> None:
    # PostgreSQL refuses a NUL in text: a controller storing this reason raw crashed.
    outcome = await send("\x00\xff\x1bSETIResp garbage\r\n")
    assert isinstance(outcome, RetryLater)
    assert outcome.reason.endswith("not a script reply: \\x00\xff\\x1bSETIResp garbage")
