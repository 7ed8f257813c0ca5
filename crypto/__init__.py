"""fieldsync.crypto: keys, canonical encoding, signatures, certificates, sealed storage.

Recipes over a thin provider layer (:mod:`crypto.provider`): callers use the
names exported here and never PyNaCl directly, so the signature provider can be
swapped (for a FIPS-validated one) without touching them.
"""

from .canonical import DOMAINS, canonical, signing_bytes
from .certificates import Certificate, issue_certificate, read_certificate, verify_certificate
from .changes import VerifiedChange, change_hash, field_digest, new_salt, sign_change, verify_change, withhold
from .checkpoints import (
    Checkpoint,
    SignedRequest,
    body_digest,
    sign_checkpoint,
    sign_request,
    verify_checkpoint,
    verify_request,
)
from .clock import as_utc, format_time, now, parse_time, stamp, utcnow
from .encoding import b64d, b64e
from .errors import (
    CanonicalError,
    CryptoError,
    DamagedKeyFile,
    KeyFormatError,
    SealedKeyError,
    VerificationError,
    WrongPassphrase,
)
from .keys import SigningKey, VerifyKey
from .provider import NaclProvider, Provider, get_provider, set_provider
from .registry import (
    KeyPeriod,
    KeyRegistry,
    RegistryHead,
    Revocation,
    agency_entry,
    entry_hash,
    hub_entry,
    revocation_entry,
    rotation_entry,
)
from .sealed import (
    FAST,
    INTERACTIVE,
    MODERATE,
    KdfCost,
    open_private_key,
    read_sealed_key,
    seal_private_key,
    sealed_public_key,
    unwrap_private_key,
    wrap_private_key,
    write_sealed_key,
)

__all__ = [
    "CanonicalError",
    "Certificate",
    "Checkpoint",
    "CryptoError",
    "DOMAINS",
    "DamagedKeyFile",
    "FAST",
    "INTERACTIVE",
    "KdfCost",
    "KeyFormatError",
    "KeyPeriod",
    "KeyRegistry",
    "MODERATE",
    "NaclProvider",
    "Provider",
    "RegistryHead",
    "Revocation",
    "SealedKeyError",
    "SignedRequest",
    "SigningKey",
    "VerificationError",
    "VerifiedChange",
    "VerifyKey",
    "WrongPassphrase",
    "agency_entry",
    "b64d",
    "b64e",
    "body_digest",
    "canonical",
    "change_hash",
    "entry_hash",
    "field_digest",
    "as_utc",
    "format_time",
    "get_provider",
    "hub_entry",
    "issue_certificate",
    "new_salt",
    "open_private_key",
    "now",
    "parse_time",
    "read_certificate",
    "read_sealed_key",
    "revocation_entry",
    "rotation_entry",
    "seal_private_key",
    "sealed_public_key",
    "set_provider",
    "sign_change",
    "sign_checkpoint",
    "sign_request",
    "signing_bytes",
    "unwrap_private_key",
    "stamp",
    "utcnow",
    "verify_certificate",
    "verify_change",
    "verify_checkpoint",
    "verify_request",
    "withhold",
    "wrap_private_key",
    "write_sealed_key",
]
