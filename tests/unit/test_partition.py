"""Buckets: each debtor's partition, stable across runs and machines."""

from __future__ import annotations

import hashlib

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.partition import BUCKETS, bucket_column, bucket_of, partition_buckets


@settings(max_examples=200, deadline=None)
@given(ids=st.lists(st.one_of(st.text(max_size=12), st.integers()), max_size=40))
def test_bucket_column_is_bucket_of_each_id_in_order(ids: list[object]) -> None:
    """Hashed once per distinct id, the column still holds each row's own bucket."""
    repeated = ids + ids[::2]  # a debtor's invoices repeat its id
    got = bucket_column(pd.Series(repeated, dtype=object, index=range(7, 7 + len(repeated))))
    assert list(got) == [bucket_of(str(i)) for i in repeated]
    assert list(got.index) == list(range(7, 7 + len(repeated)))
    assert str(got.dtype) == "int64"
    # the same from pandas' own text column, as a frame of staged payloads holds ids
    text = [str(i) for i in repeated]
    assert list(bucket_column(pd.Series(text, dtype="str"))) == [bucket_of(i) for i in text]


def test_bucket_is_the_first_eight_bytes_of_blake2b_modulo_1024() -> None:
    """The bucket is a stored fact of each ledger row: it must not move between releases."""
    for debtor in ["R0000001", "D-17", "ééé", ""]:
        digest = hashlib.blake2b(debtor.encode(), digest_size=8).digest()
        assert bucket_of(debtor) == int.from_bytes(digest, "big") % BUCKETS


def test_partitions_cover_every_bucket_once() -> None:
    for n in (1, 2, 8, 1024):
        seen = [b for p in range(n) for b in partition_buckets(p, n)]
        assert sorted(seen) == list(range(BUCKETS))
