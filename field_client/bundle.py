"""Offline verification of a provenance bundle (``fieldsync verify BUNDLE.json``).

A bundle verifies when its registry verifies as a chain, every change in it
verifies through certificate, agency key and registry, and merging those
changes with the sync engine gives exactly the record values the bundle
states. The answer names, for each current value, who wrote it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crypto import KeyRegistry, RegistryHead, VerificationError, read_certificate
from sync import HUB_DEVICE, MergeState, ProvenanceError, Verifier


@dataclass
class BundleReport:
    record_id: str
    collection: str
    agency: str
    fields: list[dict[str, Any]] = field(default_factory=list)
    changes: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_bundle(bundle: Any, *, pinned: RegistryHead | None = None) -> BundleReport:
    if not isinstance(bundle, dict) or not all(k in bundle for k in ("record", "changes", "certificates", "registry")):
        raise ValueError("not a provenance bundle (needs record, changes, certificates, registry)")
    for key, kind in (("record", dict), ("changes", list), ("certificates", dict), ("registry", list)):
        if not isinstance(bundle[key], kind):
            raise ValueError(f"not a provenance bundle: {key} must be {'an object' if kind is dict else 'a list'}")
    record = bundle["record"]
    report = BundleReport(str(record.get("record_id")), str(record.get("collection")), str(record.get("agency")))
    try:
        registry = KeyRegistry.verify(bundle["registry"], pinned=pinned)
    except VerificationError as exc:
        report.problems.append(f"key registry does not verify: {exc}")
        return report
    verifier, merged = Verifier(registry), MergeState()
    officers: dict[str, str] = {}
    for wire in bundle["changes"]:
        device = wire.get("device") if isinstance(wire, dict) else None
        cert = bundle["certificates"].get(device)
        try:
            change = verifier.verify(wire, cert)
            merged.apply(change)
            report.changes += 1
            if cert:
                parsed = read_certificate(cert)
                officers[parsed.device_id] = f"{parsed.officer} ({parsed.agency})"
            if change.device == HUB_DEVICE:  # a resolution: the staff member it names, signed
                officers[f"{HUB_DEVICE}:{change.id}"] = f"{change.wire['resolution']['by']} (hub resolution)"
        except (ProvenanceError, VerificationError) as exc:
            report.problems.append(f"change {wire.get('id') if isinstance(wire, dict) else '?'}: {exc}")
    state = merged.records.get(report.record_id)
    if state is None:
        report.problems.append("no verified change builds this record")
        return report
    stated = record.get("values", {})
    if not isinstance(stated, dict):
        report.problems.append("the bundle's record values are not an object")
        stated = {}
    for name, value in state.values().items():
        if name in stated and stated[name] != value:
            report.problems.append(f"field {name}: the bundle states {stated[name]!r}, its changes give {value!r}")
    if bool(record.get("deleted")) != state.deleted:
        report.problems.append("the bundle's deleted flag does not match its changes")
    for name, versions in sorted(state.history.items()):
        winner = versions[-1]
        report.fields.append(
            {
                "field": name,
                "value": None if winner.withheld else winner.value,
                "withheld": winner.withheld,
                "device": winner.device,
                "written_by": officers.get(winner.device) or officers.get(f"{HUB_DEVICE}:{winner.change_id}", "?"),
                "hlc": winner.hlc,
                "verified": True,
            }
        )
    return report
