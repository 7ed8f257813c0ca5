"""fieldsync.sync: the merge engine and sync protocol core. No I/O at all.

Modules, each opening with the rules it owns: :mod:`hlc` (clocks),
:mod:`schemas` (records and change envelopes), :mod:`changes` (the change
value and how one is made), :mod:`feeds` (per-device chains), :mod:`merge`
(per-field last-writer-wins), :mod:`conflicts` (what staff review),
:mod:`provenance` (verifying a change's chain of keys), :mod:`resolutions`
(what a hub-signed decision of command staff may say), :mod:`reservations`
(a booking's time order, initial state and who may set which state).

:mod:`schemas` (and marshmallow with it) is imported at the first use of one of its
names here, not with the package: a process that only verifies changes
(field_client.verifier's workers, started during a sync) does without it.
"""

from typing import TYPE_CHECKING, Any

from .changes import DELETED, Change, make_change
from .conflicts import Conflict, DoubleBooking, Version, find_double_bookings
from .errors import (
    ChangeRejected,
    ClockDriftError,
    ClockError,
    ProvenanceError,
    ReservationRefused,
    SyncError,
    ValidationError,
)
from .feeds import FeedHead, Verdict, classify, release
from .hlc import DEFAULT_MAX_DRIFT_MS, Clock, Hlc
from .merge import MergeState, Outcome, RecordState, apply
from .provenance import HUB_DEVICE, Verifier
from .resolutions import check_resolution

if TYPE_CHECKING:
    from .schemas import COLLECTIONS, validate_change, validate_values

_FROM_SCHEMAS = frozenset(("COLLECTIONS", "validate_change", "validate_values"))


def __getattr__(name: str) -> Any:
    """The names of :mod:`schemas`, imported on first use (see above)."""
    if name in _FROM_SCHEMAS:
        from . import schemas

        return getattr(schemas, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "COLLECTIONS",
    "Change",
    "ChangeRejected",
    "Clock",
    "ClockDriftError",
    "ClockError",
    "Conflict",
    "DEFAULT_MAX_DRIFT_MS",
    "DELETED",
    "DoubleBooking",
    "FeedHead",
    "HUB_DEVICE",
    "Hlc",
    "MergeState",
    "Outcome",
    "ProvenanceError",
    "RecordState",
    "ReservationRefused",
    "SyncError",
    "ValidationError",
    "Verdict",
    "Verifier",
    "Version",
    "apply",
    "check_resolution",
    "classify",
    "find_double_bookings",
    "make_change",
    "release",
    "validate_change",
    "validate_values",
]
