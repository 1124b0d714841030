"""`make demo` runs the main job end to end and reports success."""

from pathlib import Path

from cartstatus.demo import run


def test_demo_runs_twice_from_scratch(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    work = tmp_path / "demo-work"
    assert run(work) == 0
    assert run(work) == 0  # idempotent: a second run starts from a fresh stack
    out = capsys.readouterr().out
    assert "what the cart received" in out
    assert "what the BigCommerce store holds" in out  # a native REST cart beside the script cart
    assert "UPS 1Z999AA10123456785, FedEx 794644790133" in out
    assert "internal only (rule 3)" in out
    assert "nothing changed, nothing queued (rule 4)" in out
    assert "0 records on the stack" in out
    assert "the OSS shows the shopper of order A-2001: Shipped (https://www.ups.com/track?tracknum=" in out
    assert "subscription lapsed on" in out
