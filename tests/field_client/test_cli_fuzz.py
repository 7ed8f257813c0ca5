"""``fieldsync`` fed bad input: every case one clear error line and nothing written.

Commands that write or take input, and what is thrown at them:

- ``resource|contact|reservation add`` and ``update ID``: malformed and
  out-of-range values, wrong types (text for a number, JSON arrays or objects
  where text or a number is expected, bad dates and times), unknown field
  names, strings far beyond any field limit (up to 3 MB), odd Unicode (NUL,
  control characters, lone surrogates, bidi overrides), bad record ids;
- ``delete ID``: bad, unknown, foreign and already deleted ids;
- ``enroll --hub --token``: addresses and tokens that cannot be right;
- ``sync --interval``, ``ui --port --sync-every``, unknown options, unknown
  commands and collections;
- ``verify BUNDLE.json``: files that are not bundles.

Each ends with a non-zero exit, exactly one line on stderr starting
``Error:`` that names the field or argument, no traceback, and every table of
the replica (records, changes, outbox, meta with seq/prev/clock, conflicts...)
unchanged, read through field_client.replica.Replica. Valid but odd text
(emoji, right-to-left scripts, combining marks, NFC and NFD, text at its
length limit) is accepted and comes back byte for byte, in the replica, the
signed outbox change and ``list --json``.

Most cases run in-process through click's CliRunner (hypothesis, fast); a
handful run the real ``fieldsync`` executable for exit codes, argv decoding
(invalid UTF-8 becomes lone surrogates) and the absence of tracebacks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import unicodedata
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from field_client import edits, state
from field_client.cli import main
from field_client.replica import Replica
from sync.schemas import RECORD_SCHEMAS
from tests.backend.helpers import Hub

from .conftest import MakeLaptop
from .helpers import PASSPHRASE, VEHICLE, Laptop

sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the hub is not what is tested

FUZZ = settings(
    max_examples=25,  # per test; the many-branched case lists below ask for more
    deadline=None,
    derandomize=True,
    database=None,
    # one enrolled laptop serves every example on purpose: that nothing changes in it is the property
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
FIELDSYNC = str(Path(sys.executable).with_name("fieldsync"))
START, END = "2026-11-23T08:00:00Z", "2026-11-23T12:00:00Z"


@dataclass
class Desk:
    """One enrolled laptop holding a record of each collection, one deleted and one of another agency."""

    laptop: Laptop
    resource: str
    contact: str
    reservation: str
    deleted: str
    foreign: str

    @property
    def env(self) -> dict[str, str]:
        return {"FIELDSYNC_HOME": str(self.laptop.home), "FIELDSYNC_PASSPHRASE": PASSPHRASE}

    def run(self, *args: str) -> Result:
        return CliRunner(env=self.env).invoke(main, list(args))

    def footprint(self) -> dict[str, Any]:
        """Every row of every table of the replica, and its schema version."""
        with Replica.open(self.laptop.home, PASSPHRASE) as rep:
            tables = [r["name"] for r in rep.rows("SELECT name FROM sqlite_master WHERE type = 'table'")]
            out: dict[str, Any] = {t: rep.rows(f'SELECT * FROM "{t}" ORDER BY rowid') for t in sorted(tables)}
            out["user_version"] = rep.conn.execute("PRAGMA user_version").fetchone()[0]
        assert {"records", "changes", "outbox", "meta", "secrets"} <= set(out)
        return out


@pytest.fixture
def desk(laptop: MakeLaptop, hub: Hub) -> Desk:
    cso = laptop("CSO", "Dep. Kim")
    spd = laptop("SPD", "Sgt. Lee")
    hub.agreement("CSO", "SPD", ["resources"])
    foreign = edits.create(cso.device, "resources", VEHICLE)["id"]
    cso.sync()
    spd.sync()
    unit = edits.create(spd.device, "resources", VEHICLE)["id"]
    contact = edits.create(spd.device, "contacts", {"name": "Dana Cruz", "role": "liaison"})["id"]
    booking = edits.create(spd.device, "reservations", {"resource_id": unit, "starts_at": START, "ends_at": END})
    gone = edits.create(spd.device, "resources", {**VEHICLE, "name": "Unit 9"})["id"]
    edits.delete(spd.device, gone)
    assert spd.record(foreign) is not None
    return Desk(spd, unit, contact, booking["id"], gone, foreign)


def refused(result: Result, *mentions: str) -> str:
    """Assert ``result`` is one clear error: non-zero exit, one ``Error:`` line naming ``mentions``."""
    assert result.exit_code not in (0, None), (result.exit_code, result.output[:300])
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # no exception escaped
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr[:2000]
    line = lines[0]
    assert line.startswith("Error: "), line
    assert len(line) < 600, line[:600]  # a huge value is not echoed back whole
    assert result.stdout == "", result.stdout[:300]
    for mention in mentions:
        assert mention in line, (mention, line)
    return line


# -- strategies -------------------------------------------------------------------------------

BAD_CHARS = (
    "\x00\x01\x07\x08\x0b\x1b\x7f\x85\x9b\u202a\u202b\u202d\u202e\u2066\u2067\u2068\u2069\ud800\udbff\udc00\udfff"
)
ODD_OK = (
    "🚓🚨👮🏽\u200d♀️"  # emoji, with a skin tone and a zero-width joiner sequence
    "שלום مرحبا"  # right-to-left scripts
    "e\u0301a\u0308\u0323"  # combining marks (NFD)
    "éåÅ"  # precomposed (NFC)
    "\u200e\u200f"  # left-to-right / right-to-left MARKS are text, not overrides
    "漢字カタカナ한국어"
    "ǅǈ𝔘𝔫𝔦𝔱"
)
plain = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=30)
with_bad_char = (
    st.tuples(plain, st.sampled_from(BAD_CHARS), st.text(max_size=5)).map("".join).filter(lambda s: bool(s.strip()))
)
huge = st.sampled_from([201, 4001, 100_000, 3_000_000]).map(lambda n: "x" * n)
not_integer = st.one_of(
    st.sampled_from(["", "x", "1.5", "1e3", "0x10", "١٢", "½", "true", "null", "[1]", '{"a": 1}', "9" * 400]),
    st.text(max_size=20).filter(lambda s: not s.strip().lstrip("+-").isdigit()),
)
out_of_range = st.one_of(st.integers(max_value=-1), st.integers(min_value=1_000_001)).map(str)
bad_location = st.sampled_from(
    [
        "HQ",
        "[1, 2]",
        '"HQ"',
        "null null",
        '{"text": "HQ", "lat": 91, "lon": 0}',
        '{"text": "HQ", "lat": 10}',
        '{"text": "HQ", "lat": "10", "lon": "20"}',
        '{"street": "Main"}',
        '{"text": ""}',
        '{"text": "' + "x" * 300 + '"}',
        '{"text": "HQ", "lat": NaN, "lon": 0}',
        '{"text": "HQ", "lat": 1e999, "lon": 0}',
        "{" * 5000,
    ]
)
bad_time = st.one_of(
    st.sampled_from(
        [
            "",
            "tomorrow",
            "2026-11-23",
            "2026-11-23 08:00:00",
            "2026-11-23T08:00:00",
            "2026-11-23T08:00:00+01:00",
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-11-23T25:00:00Z",
            "2026-11-23T08:00:00.123Z",
            "\uff12\uff10\uff12\uff16-11-23T08:00:00Z"  # full-width digits,
            "0000-00-00T00:00:00Z",
            "[1]",
        ]
    ),
    st.text(max_size=25),
)
bad_record_id = st.one_of(
    st.sampled_from(["", "x", "../../etc/passwd", "'; DROP TABLE records; --", "00000000-0000-0000-0000-000000000000"]),
    st.uuids(version=4).map(lambda u: str(u).upper()),
    st.text(max_size=40),
    huge,
    with_bad_char,
)
unknown_field = st.one_of(
    st.sampled_from(["colour", "Name", "name ", " name", "_deleted", "id", "agency", "location.x", "x.y.z", "", "ü"]),
    st.from_regex(r"\A[a-z][a-z0-9_]{0,20}\Z").filter(
        lambda n: n not in {*RECORD_SCHEMAS["resources"]._declared_fields}
    ),
)


def _cases(desk: Desk) -> st.SearchStrategy[tuple[list[str], tuple[str, ...]]]:
    """(argv, words the error line must name) for every writing command."""
    add_resource = ["resource", "add", "--kind", "vehicle", "--name", "Unit 77"]
    booking = ["reservation", "add", "--resource", desk.resource, "--starts", START, "--ends", END]
    r = desk.resource
    text_field = st.sampled_from(["name", "notes", "description"])
    return st.one_of(
        # resources
        st.builds(lambda v: (["resource", "add", "--kind", v, "--name", "U"], ("kind",)), st.text(max_size=30)).filter(
            lambda c: c[0][3] not in RECORD_SCHEMAS["resources"]._declared_fields["kind"].validate.choices  # type: ignore[attr-defined]
        ),
        st.builds(
            lambda v: (["resource", "add", "--kind", "vehicle", "--name", v], ("name",)),
            st.one_of(huge, with_bad_char, st.just("")),
        ),
        st.builds(
            lambda f, v: ([*add_resource, "--set", f"{f}={v}"], (f,)),
            text_field,
            st.one_of(with_bad_char, huge.filter(lambda s: len(s) > 4000)),
        ),
        st.builds(
            lambda v: ([*add_resource, "--set", f"quantity={v}"], ("quantity",)), st.one_of(not_integer, out_of_range)
        ),
        st.builds(lambda v: ([*add_resource, "--set", f"location={v}"], ("location",)), bad_location),
        st.builds(
            lambda v: ([*add_resource, "--set", f"point_of_contact={v}"], ("point_of_contact",)),
            bad_record_id.filter(bool),
        ),
        st.builds(lambda n: ([*add_resource, "--set", f"{n}=red"], ()), unknown_field.filter(lambda n: "=" not in n)),
        st.builds(lambda v: ([*add_resource, "--status", v], ("status",)), st.text(max_size=20)),
        st.builds(lambda v: ([*add_resource, "--set", v], ("FIELD=VALUE",)), plain.filter(lambda s: "=" not in s)),
        st.builds(lambda v: ([*add_resource, "--clear", v], ()), st.sampled_from(["kind", "name", "colour", ""])),
        # updates
        st.builds(
            lambda v: (["resource", "update", r, "--set", f"quantity={v}"], ("quantity",)),
            st.one_of(not_integer, out_of_range),
        ),
        st.builds(lambda v: (["resource", "update", r, "--name", v], ("name",)), st.one_of(huge, with_bad_char)),
        st.builds(lambda i: (["resource", "update", i, "--status", "deployed"], ("record",)), bad_record_id),
        st.builds(lambda i: (["contact", "update", i, "--name", "X"], ("record",)), st.uuids(version=4).map(str)),
        st.just((["resource", "update", r], ("nothing to change",))),
        st.just((["resource", "update", desk.deleted, "--status", "deployed"], ("deleted",))),
        # contacts
        st.builds(
            lambda v: (["contact", "add", "--name", "Lt. Park", "--role", "liaison", "--phone", v], ("phone",)),
            st.text(min_size=1, max_size=50).filter(lambda s: not set(s) <= set("+0123456789 ().-") or len(s) < 3),
        ),
        st.builds(
            lambda v: (["contact", "add", "--name", "Lt. Park", "--role", "liaison", "--email", v], ("email",)),
            st.one_of(plain.filter(lambda s: "@" not in s), with_bad_char.map(lambda s: f"a{s}@example.org")),
        ),
        st.builds(lambda v: (["contact", "add", "--name", "Lt. Park", "--role", v], ("role",)), st.text(max_size=20)),
        st.builds(
            lambda f, v: (["contact", "add", "--name", "Lt. Park", "--role", "liaison", "--set", f"{f}={v}"], (f,)),
            st.sampled_from(["radio", "jurisdiction", "agency_unit"]),
            st.one_of(with_bad_char, huge),
        ),
        # reservations
        st.builds(lambda v: ([*booking[:4], "--starts", v, "--ends", END], ("starts_at",)), bad_time),
        st.builds(lambda v: ([*booking[:6], "--ends", v], ("ends_at",)), bad_time),
        st.just(([*booking[:4], "--starts", END, "--ends", START], ("ends_at",))),
        st.just(([*booking[:4], "--starts", START, "--ends", START], ("ends_at",))),
        st.builds(
            lambda i: (["reservation", "add", "--resource", i, "--starts", START, "--ends", END], ("resource",)),
            bad_record_id,
        ),
        st.just((["reservation", "add", "--resource", desk.contact, "--starts", START, "--ends", END], ("resource",))),
        st.just(
            (
                [
                    "reservation",
                    "add",
                    "--resource",
                    desk.foreign,
                    "--starts",
                    START,
                    "--ends",
                    END,
                    "--state",
                    "approved",
                ],
                ("state",),
            )
        ),
        st.builds(
            lambda v: ([*booking, "--state", v], ("state",)),
            st.text(max_size=12).filter(lambda s: s not in {"requested", "approved", "declined", "cancelled"}),
        ),
        st.builds(lambda v: (["reservation", "update", desk.reservation, "--ends", v], ("ends_at",)), bad_time),
        st.builds(
            lambda v: ([*booking, "--purpose", v], ("purpose",)),
            st.one_of(with_bad_char, huge.filter(lambda s: len(s) > 4000)),
        ),
        # deletes
        st.builds(lambda i: (["delete", i], ("record",)), bad_record_id),
        st.just((["delete", desk.foreign], ("CSO",))),
        st.just((["delete", desk.deleted], ("deleted",))),
    )


BAD_FLAGS = st.one_of(
    st.builds(
        lambda o: (["resource", "add", "--kind", "vehicle", "--name", "U", o], ()),
        st.sampled_from(["--bogus", "--kind", "--json=yes", "-x", "--set"]),
    ),
    st.builds(
        lambda v: (["sync", "--interval", v], ("interval",)),
        st.one_of(
            st.sampled_from(["0", "-1", "86401", "abc", "", "1.5", "9" * 500]),
            st.text(max_size=10).filter(lambda s: not s.strip().isdigit()),
        ),
    ),
    st.builds(
        lambda v: (["ui", "--port", v, "--no-browser"], ("port",)),
        st.sampled_from(["65536", "-1", "http", "80.5", "9" * 400]),
    ),
    st.builds(
        lambda v: (["ui", "--sync-every", v, "--no-browser"], ("sync-every",)), st.sampled_from(["-1", "86401", "soon"])
    ),
    st.builds(lambda c: ([c, "list"], ()), st.sampled_from(["resources", "widget", "Resource", "record"])),
    st.builds(lambda c: (["resource", c], ()), st.sampled_from(["remove", "ADD", "lists", "add\x00"])),
    st.just((["delete"], ("RECORD_ID",))),
    st.just((["resource", "update", "--status", "deployed"], ())),
    st.just((["verify"], ("BUNDLE",))),
)


@sqlite_only
def test_every_bad_value_is_one_error_line_and_writes_nothing(desk: Desk) -> None:
    before = desk.footprint()
    seen: set[str] = set()

    @settings(FUZZ, max_examples=200)
    @given(case=_cases(desk))
    def run(case: tuple[list[str], tuple[str, ...]]) -> None:
        args, mentions = case
        refused(desk.run(*args), *mentions)
        seen.add(" ".join(args[:2]))

    run()
    assert desk.footprint() == before
    assert {"resource add", "resource update", "contact add", "reservation add", "delete"} <= {
        " ".join(k.split()[:2]) if not k.startswith("delete") else "delete" for k in seen
    }, seen
    # the footprint does see a write: one good edit changes it
    assert desk.run("resource", "update", desk.resource, "--status", "deployed").exit_code == 0
    assert desk.footprint() != before


@sqlite_only
def test_every_bad_flag_or_command_is_one_error_line_and_writes_nothing(desk: Desk) -> None:
    before = desk.footprint()

    @settings(FUZZ, max_examples=60)
    @given(case=BAD_FLAGS)
    def run(case: tuple[list[str], tuple[str, ...]]) -> None:
        args, mentions = case
        refused(desk.run(*args), *mentions)

    run()
    assert desk.footprint() == before


def test_bad_enrollment_input_is_one_error_line_and_leaves_no_replica(tmp_path: Path) -> None:
    hubs = st.one_of(
        st.sampled_from(
            [
                "",
                "hub",
                "hub.example.org",
                "ftp://127.0.0.1",
                "file:///etc/passwd",
                "http://",
                "http:///api",
                "http://127.0.0.1:99999",
                "http://127.0.0.1:port",
                "http://user:secret@127.0.0.1:9",
                "http://127.0.0.1:9/?x=1",
                "http://127.0.0.1:9/#frag",
                "javascript:alert(1)",
                "http://[::1",
                "http://127.0.0.1 :9",
                "http://" + "a" * 3000,
                "http://hub.example.org",  # plain http to another machine: the pinned registry could be swapped
                "http://10.0.0.5:8000/",
                "http://127.0.0.1.evil.example:9",
            ]
        ),
        with_bad_char.map(lambda s: f"http://127.0.0.1:9/{s}"),
        st.text(max_size=30).filter(lambda s: not s.startswith(("http://", "https://"))),
    )
    home = tmp_path / "laptop"

    @FUZZ
    @given(hub=hubs)
    def run(hub: str) -> None:
        env = {"FIELDSYNC_HOME": str(home), "FIELDSYNC_PASSPHRASE": PASSPHRASE}
        result = CliRunner(env=env).invoke(main, ["enroll", "--hub", hub, "--token", "A" * 43])
        refused(result, "--hub")
        assert not home.exists()

    run()


def test_a_bad_enrollment_token_is_named_before_anything_is_created(tmp_path: Path) -> None:
    home = tmp_path / "laptop"
    env = {"FIELDSYNC_HOME": str(home), "FIELDSYNC_PASSPHRASE": PASSPHRASE}

    @FUZZ
    @given(token=st.one_of(st.just(""), with_bad_char, huge, st.text(" \t\n", min_size=1, max_size=3)))
    def run(token: str) -> None:
        result = CliRunner(env=env).invoke(main, ["enroll", "--hub", "http://127.0.0.1:9", "--token", token])
        refused(result, "--token")
        assert not home.exists()

    run()
    # a short passphrase is refused before the token is spent or anything is left behind
    short = {**env, "FIELDSYNC_PASSPHRASE": "short"}
    result = CliRunner(env=short).invoke(main, ["enroll", "--hub", "http://127.0.0.1:9", "--token", "A" * 43])
    refused(result, "passphrase")
    assert not home.exists()


def test_a_home_that_cannot_be_a_folder_is_one_error_line(tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    homes = [str(a_file), str(a_file / "below"), "/dev/null", "x" * 5000, f"{tmp_path}/a\x00b", "/" + "d/" * 3000]
    commands = [
        ["status"],
        ["resource", "add", "--kind", "vehicle", "--name", "U"],
        ["enroll", "--hub", "http://127.0.0.1:9", "--token", "A" * 43],
    ]
    for home in homes:
        for command in commands:
            result = CliRunner(env={"FIELDSYNC_PASSPHRASE": PASSPHRASE}).invoke(main, ["--home", home, *command])
            refused(result, "--home")
    assert a_file.read_text() == "not a folder" and sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]
    # a failed enrollment takes away every folder it made, parents included
    deep = tmp_path / "new" / "laptop" / "home"
    result = CliRunner(env={"FIELDSYNC_PASSPHRASE": PASSPHRASE}).invoke(
        main, ["--home", str(deep), "enroll", "--hub", "http://127.0.0.1:9", "--token", "A" * 43]
    )
    refused(result, "unreachable")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


@sqlite_only
def test_files_that_are_not_bundles_are_one_error_line(desk: Desk, tmp_path: Path) -> None:
    before = desk.footprint()
    real = {"record": {"record_id": desk.resource}, "changes": [], "certificates": {}, "registry": []}
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=10),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
        max_leaves=8,
    )
    mutated = st.builds(
        lambda key, value: json.dumps({**real, key: value}).encode(),
        st.sampled_from(sorted(real)),
        json_values,
    )
    contents = st.one_of(
        mutated,
        json_values.map(lambda v: json.dumps(v).encode()),
        st.binary(max_size=200),
        st.sampled_from(
            [b"", b"\x00" * 10, b"\xff\xfe{", b"{" * 100_000, b'{"record": 1e999999}', b"[" * 5000 + b"]" * 5000]
        ),
    )
    path = tmp_path / "bundle.json"

    @FUZZ
    @given(content=contents)
    def run(content: bytes) -> None:
        path.write_bytes(content)
        refused(desk.run("verify", str(path)))

    run()
    assert desk.footprint() == before


# -- valid but odd: accepted, and kept byte for byte ----------------------------------------------

odd_text = st.text(st.sampled_from(ODD_OK + "abc XYZ 0123.-'"), min_size=1, max_size=200).filter(
    lambda s: s.strip() != ""
)


@sqlite_only
def test_odd_but_valid_text_is_accepted_and_round_trips_byte_exact(desk: Desk) -> None:
    laptop = desk.laptop

    @FUZZ
    @given(
        # JSON typed where text is expected is text: kept as typed, never parsed
        name=st.one_of(odd_text, st.sampled_from(['{"a": 1}', "[1, 2]", "null", "true", "12", '"quoted"'])),
        notes=st.one_of(odd_text, st.just("ñ" * 4000), st.just("🚓" * 4000), st.just("e\u0301" * 2000)),
        radio=odd_text,
    )
    def run(name: str, notes: str, radio: str) -> None:
        added = desk.run("resource", "add", "--kind", "vehicle", "--name", name, "--set", f"notes={notes}", "--json")
        assert added.exit_code == 0, added.output[:500]
        record = json.loads(added.stdout)
        assert (record["name"], record["notes"]) == (name, notes)
        changed = desk.run("contact", "update", desk.contact, "--set", f"radio={radio}", "--json")
        assert changed.exit_code == 0, changed.output[:500]
        assert json.loads(changed.stdout)["radio"] == radio
        # in the replica and in the signed change waiting in the outbox, unnormalized
        laptop.reopen()
        stored = state.get_record(laptop.replica, record["id"])
        assert stored is not None and stored["name"].encode() == name.encode()
        assert stored["notes"].encode() == notes.encode()
        (wire,) = [
            json.loads(r["wire"])
            for r in laptop.replica.rows("SELECT wire FROM outbox WHERE record_id = ?", (record["id"],))
        ]
        assert wire["fields"]["name"]["value"] == name and wire["fields"]["notes"]["value"] == notes
        laptop.device.verifier().verify(wire, laptop.device.certificate)  # and it is signed as given

    run()


@sqlite_only
def test_nfc_and_nfd_spellings_stay_two_different_values(desk: Desk) -> None:
    nfc, nfd = "Café Unit", unicodedata.normalize("NFD", "Café Unit")
    assert nfc != nfd
    ids = []
    for name in (nfc, nfd):
        result = desk.run("resource", "add", "--kind", "vehicle", "--name", name, "--json")
        assert result.exit_code == 0, result.output
        ids.append(json.loads(result.stdout)["id"])
    listed = {r["id"]: r["name"] for r in json.loads(desk.run("resource", "list", "--json").stdout)}
    assert [listed[i].encode() for i in ids] == [nfc.encode(), nfd.encode()]
    at_limit = "x" * 199 + "🚓"  # 200 characters (the limit) of which one is 4 bytes in UTF-8
    result = desk.run("resource", "add", "--kind", "vehicle", "--name", at_limit, "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["name"] == at_limit, result.output


# -- the real executable: exit codes, argv decoding, no traceback -------------------------------------


def _fieldsync(desk: Desk, *args: str | bytes) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, **desk.env, "PYTHONUTF8": "0", "LC_ALL": "C.UTF-8"}
    return subprocess.run([FIELDSYNC, *args], env=env, capture_output=True, timeout=60, check=False)


@sqlite_only
def test_the_fieldsync_process_gives_one_line_and_an_exit_status(desk: Desk) -> None:
    before = desk.footprint()
    add = ["resource", "add", "--kind", "vehicle"]
    cases: list[tuple[list[str | bytes], int, str]] = [
        # invalid UTF-8 in argv reaches Python as lone surrogates (surrogateescape)
        ([*add, "--name", b"Unit \xff\xfe 12"], 1, "name"),
        ([*add, "--name", "x" * 100_000], 1, "name"),  # argv's own limit is 128 KiB per argument
        ([*add, "--name", "U", "--set", "quantity=three"], 1, "quantity"),
        ([*add, "--name", "U\u202eevil"], 1, "name"),
        (["resource", "update", b"\xff" * 36, "--status", "deployed"], 1, "record"),
        (["delete", str(uuid.uuid4())], 1, "record"),
        ([*add, "--name", "U", "--bogus"], 2, "--bogus"),
        (["sync", "--interval", "0"], 2, "interval"),
    ]
    for args, status, mention in cases:
        done = _fieldsync(desk, *args)
        err = done.stderr.decode("utf-8", "replace")
        assert done.returncode == status, (args[:4], done.returncode, err[:500])
        assert "Traceback" not in err and done.stdout == b"", err[:2000]
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and mention in lines[0], (args[:4], err[:500])
    assert desk.footprint() == before
    # and a good one still works, the same process path
    done = _fieldsync(desk, *add, "--name", "Unit 🚓 שלום", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["name"] == "Unit 🚓 שלום"
