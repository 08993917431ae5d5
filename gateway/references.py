"""References: the short code a send answers with, and (with the licensee) what its CommId is made of.

A send without an Idempotency-Key draws a random one; a send with a key derives its candidates from
(licensee, key), so every retry of it looks in the same places (``gateway.idempotency``).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid

REFERENCE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
REFERENCE_LENGTH = 10  # 50 bits: a collision only costs one more insert attempt
_BITS_PER_CHARACTER = 5


def random_reference() -> str:
    return "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(REFERENCE_LENGTH))


def keyed_reference(licensee_id: uuid.UUID, key: str, candidate: int) -> str:
    """The ``candidate``-th reference a send with this key may take: the first 50 bits of a SHA-256."""
    digest = hashlib.sha256(f"{licensee_id.hex}\n{key}\n{candidate}".encode("ascii")).digest()
    number = int.from_bytes(digest, "big") >> (len(digest) * 8 - REFERENCE_LENGTH * _BITS_PER_CHARACTER)
    characters = []
    for _ in range(REFERENCE_LENGTH):
        number, digit = divmod(number, len(REFERENCE_ALPHABET))
        characters.append(REFERENCE_ALPHABET[digit])
    return "".join(reversed(characters))
