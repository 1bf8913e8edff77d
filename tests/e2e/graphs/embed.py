"""A deterministic, offline embedding for semantic store search tests.

Bag of words: each lower-cased word adds 1 to one of ``DIMS`` buckets chosen by a stable
hash (md5, not ``hash()``, which is salted per process), so texts sharing more words get a
higher cosine similarity. No network, no model.
"""

import hashlib
import re

DIMS = 64
_WORD = re.compile(r"[a-z0-9]+")


def _bucket(word: str) -> int:
    return int(hashlib.md5(word.encode()).hexdigest(), 16) % DIMS


def embed_one(text: str) -> list[float]:
    vec = [0.0] * DIMS
    for word in _WORD.findall(text.lower()):
        vec[_bucket(word)] += 1.0
    if not any(vec):
        vec[0] = 1e-6  # a zero vector has no cosine similarity; keep it defined
    return vec


def embed(texts: list[str]) -> list[list[float]]:
    return [embed_one(t) for t in texts]
