"""The installed plugin is found through its entry point and registers its connector and matrix row."""

from cartstatus.plugins import get_connectors, get_matrix_rows
from cartstatus_acmecart import AcmeCartConnector


def test_the_connector_is_registered() -> None:
    assert get_connectors()["acmecart"] is AcmeCartConnector


def test_the_matrix_row_is_registered() -> None:
    rows = {row["key"]: row for _, row in get_matrix_rows()}
    assert rows["acmecart"]["connector"] == "acmecart"
    assert rows["acmecart"]["status_vocabulary"] == list(AcmeCartConnector.status_vocabulary or ())
