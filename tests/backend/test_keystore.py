"""backend.keystore: the hub key a process keeps unwrapped follows the stored row."""

from __future__ import annotations

import json

import pytest
from flask import Flask

from backend import keystore
from backend.db import db
from backend.errors import HubError
from backend.models import HubKey
from crypto import SigningKey
from crypto.clock import now


def test_the_kept_hub_key_is_the_current_rows_and_a_new_one_is_unwrapped_at_its_first_use(app: Flask) -> None:
    with app.app_context():
        row = db.session.query(HubKey).one()
        first = keystore.hub_key()
        assert first.verify_key.to_text() == row.public_key
        assert keystore.hub_key() is first  # kept: not unwrapped again for every checkpoint
        # the row sealed anew (a new hub key, or the same key under a new KEK): the new one signs
        other = SigningKey.generate()
        row.sealed, row.public_key = keystore._seal(other), other.verify_key.to_text()
        db.session.commit()
        assert keystore.hub_key() == other
        # a row that no longer opens (its box altered) is refused, though a key was kept a moment ago
        doc = json.loads(row.sealed)
        doc["box"] = doc["box"][:-4] + ("AAAA" if not doc["box"].endswith("AAAA") else "BBBB")
        row.sealed = json.dumps(doc)
        db.session.commit()
        with pytest.raises(HubError):
            keystore.hub_key()


def test_a_retired_hub_key_is_not_used(app: Flask) -> None:
    with app.app_context():
        keystore.hub_key()
        db.session.query(HubKey).update({"retired_at": now()})
        db.session.commit()
        with pytest.raises(HubError, match="no key yet"):
            keystore.hub_key()
