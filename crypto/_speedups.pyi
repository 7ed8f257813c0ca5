# crypto/_speedups.c (crypto.speedups says when it is used)
SOURCE_SHA256: str

def signed_bytes(change: object, change_prefix: bytes, field_prefix: bytes, /) -> bytes | None: ...
