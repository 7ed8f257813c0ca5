"""Resilience and adversarial fixtures: real hub processes and CLI officers on loopback.

The suite reuses the end-to-end harness (``tests/e2e/conftest.py``): each test gets its own
``fieldsync-hub serve`` process on a copy of a template instance folder, and officers driven
only through ``fieldsync --home DIR``. Fault injectors (a TCP proxy, a private PostgreSQL
server) live in modules of their own beside the tests that use them.
"""

from __future__ import annotations

from tests.e2e.conftest import hub_process, hub_template, officer  # noqa: F401 - fixtures
