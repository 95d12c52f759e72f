"""Stable partitioning of a creditor's portfolio by a hash of the debtor id.

Each debtor gets a ``bucket`` (0..1023) when it enters the ledger; partition ``p`` of
``n`` is every bucket with ``bucket % n == p`` (so ``n`` should divide 1024).
"""

from __future__ import annotations

import hashlib

import pandas as pd

BUCKETS = 1024


def bucket_of(debtor_id: str) -> int:
    digest = hashlib.blake2b(str(debtor_id).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def partition_buckets(p: int, n: int) -> list[int]:
    """The buckets of partition ``p`` of ``n`` (``bucket % n == p``), as a list an index
    on the bucket can serve where the modulo cannot."""
    return list(range(p, BUCKETS, n))


def bucket_column(ids: pd.Series) -> pd.Series:
    """``bucket_of`` each id, hashed once per distinct id (a debtor's invoices share
    it: a day's million invoices hash a quarter of a million ids)."""
    text = ids.astype(str)
    return text.map({i: bucket_of(i) for i in text.unique()}).astype("int64")


__all__ = ["BUCKETS", "bucket_column", "bucket_of", "partition_buckets"]
