"""The one line: every standard check of the cartstatus conformance kit."""

from cartstatus.testing import connector_test_class
from cartstatus_acmecart import AcmeCartConnector, AcmeCartSimulator

SETTINGS = {"base_url": "http://acme.test/api/v1", "username": "om-admin", "password": "acme-test-pass-123"}

TestAcmeCart = connector_test_class(AcmeCartConnector, settings=SETTINGS, simulator=AcmeCartSimulator)
