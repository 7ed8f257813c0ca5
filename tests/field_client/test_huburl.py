"""The hub address given at enrollment: https, or plain http only to this machine."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from field_client.cli import main
from field_client.errors import BadHubAddress, ClientError
from field_client.huburl import check_hub_url


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("https://hub.example.org", "https://hub.example.org"),
        ("https://hub.example.org/", "https://hub.example.org"),
        ("https://hub.example.org:8443/fieldsync/", "https://hub.example.org:8443/fieldsync"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("http://127.8.9.10:5000/", "http://127.8.9.10:5000"),
        ("http://localhost:8000", "http://localhost:8000"),
        ("http://[::1]:8000", "http://[::1]:8000"),
        ("  https://hub.example.org  ", "https://hub.example.org"),
    ],
)
def test_https_anywhere_and_http_on_this_machine_are_accepted(given: str, stored: str) -> None:
    assert check_hub_url(given) == stored


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("http://hub.example.org", "must start with https://"),
        ("http://10.0.0.5:5000", "must start with https://"),
        ("http://[::ffff:10.0.0.5]:5000", "must start with https://"),
        ("http://localhost.evil.example", "must start with https://"),
        ("http://127.0.0.1.evil.example", "must start with https://"),
        ("ftp://hub.example.org", "must look like https://"),
        ("hub.example.org", "must look like https://"),
        ("https://", "must look like https://"),
        ("https://officer:secret@hub.example.org", "user name or password"),
        ("https://hub.example.org/?next=x", "query"),
        ("https://hub.example.org/#x", "fragment"),
        ("https://hub.example.org:99999", "not a valid URL"),
        ("https://hub.example.org:port", "not a valid URL"),
    ],
)
def test_anything_else_is_refused_with_the_reason(given: str, says: str) -> None:
    with pytest.raises(BadHubAddress, match=says):
        check_hub_url(given)
    assert issubclass(BadHubAddress, ClientError)


def test_enroll_refuses_plain_http_to_another_machine_before_anything_is_written(tmp_path: Path) -> None:
    home = tmp_path / "laptop"
    env = {"FIELDSYNC_HOME": str(home), "FIELDSYNC_PASSPHRASE": "a long enough passphrase"}
    result = CliRunner(env=env).invoke(main, ["enroll", "--hub", "http://hub.example.org", "--token", "t"])
    assert result.exit_code == 2, result.output  # a usage error: the option's value
    assert result.stderr.strip().splitlines() == [
        "Error: Invalid value for '--hub': the hub address must start with https:// (hub.example.org is not "
        "this machine; plain http is accepted only for a hub on localhost, 127.0.0.1 or ::1) "
        "(see 'main enroll --help')"
    ]
    assert not home.exists()
