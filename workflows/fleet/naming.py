"""Node names of a pool: `<pool>-<5 characters>`, valid Windows computer names.

The suffix comes from the alphabet Kubernetes' `generateName` uses (no vowels, so no words; no
0/1/3 that look like letters), lowercase. The pool name (at most 9 characters, starting with a
letter; checked by `activities.pools.parse_pool`) keeps the name at most 15 characters and not
all digits, as Windows requires. Callers inside workflows pass `workflow.random()`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection

ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery/pkg/util/rand
SUFFIX_LENGTH = 5
MAX_NAME = 15  # Windows computer names (NetBIOS)
_ATTEMPTS = 1000


def new_node_name(
    pool: str, rand: Callable[[], float] | random.Random, taken: Collection[str] = ()
) -> str:
    """A fresh `<pool>-xxxxx` name not in `taken`; ValueError if the pool name cannot carry one."""
    if not pool or len(pool) + 1 + SUFFIX_LENGTH > MAX_NAME or not pool[0].isalpha():
        raise ValueError(
            f"pool name {pool!r} cannot prefix node names: it must start with a letter and "
            f"leave room for '-' and {SUFFIX_LENGTH} characters in {MAX_NAME}"
        )
    draw = rand.random if isinstance(rand, random.Random) else rand
    for _ in range(_ATTEMPTS):
        suffix = "".join(ALPHABET[int(draw() * len(ALPHABET)) % len(ALPHABET)] for _ in range(5))
        name = f"{pool.lower()}-{suffix}"
        if name not in taken:
            return name
    raise ValueError(f"no free node name for pool {pool!r} after {_ATTEMPTS} tries")
