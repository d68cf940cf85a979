"""Packing round-trips any ids, columns and text exactly, directly and through Redis."""

from __future__ import annotations

import uuid
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twin_service.twins import TickFrame, TwinStore, codec
from twin_service.twins.keys import INDEX_BUCKETS
from twin_service.twins.window import window_mean_aligned

_chars = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")
_text = st.text(_chars, max_size=12)
_ids = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\n\x00"), min_size=1, max_size=12)
_names = st.text(_chars, min_size=1, max_size=8)
_floats = st.floats(allow_nan=True, allow_infinity=True)


@st.composite
def blocks(draw):
    ids = draw(st.lists(_ids, unique=True, max_size=40))
    n = len(ids)
    names = draw(st.lists(_names, unique=True, max_size=5))
    split = draw(st.integers(0, len(names)))
    columns = {c: np.array(draw(st.lists(_floats, min_size=n, max_size=n))) for c in names[:split]}
    text = {c: draw(st.lists(_text, min_size=n, max_size=n)) for c in names[split:]}
    return ids, columns, text


def test_fnv1a_matches_the_published_test_vectors():
    # From the FNV reference (isthe.com/chongo/tech/comp/fnv): FNV-1a 32-bit.
    assert codec.fnv1a_32(b"") == 0x811C9DC5
    assert codec.fnv1a_32(b"a") == 0xE40C292C
    assert codec.fnv1a_32(b"foobar") == 0xBF9CF968


@given(blocks())
def test_block_round_trip(block):
    ids, columns, text = block
    enc = codec.encode_block(ids, columns, text)
    layout = enc.layout
    assert codec.decode_ids(enc.ids, layout.n) == ids
    decoded = codec.decode_columns(enc.num, layout.n, layout.columns)
    for name, values in columns.items():
        np.testing.assert_array_equal(decoded[name], values)
    assert codec.decode_text(enc.text, layout) == text
    assert len(enc.index) <= INDEX_BUCKETS
    for row, vid in enumerate(ids):
        bucket = enc.index[str(codec.index_bucket(vid))]
        assert codec.find_row(bucket, vid, layout.id_width) == row
        start, end = codec.num_row_range(row, len(layout.columns))
        np.testing.assert_array_equal(
            np.frombuffer(enc.num[start : end + 1], dtype=codec.FLOAT), [columns[c][row] for c in columns]
        )
        start, end = codec.text_row_range(row, layout.text_widths)
        assert codec.decode_text_row(enc.text[start : end + 1], layout.text_widths) == [text[c][row] for c in text]
    assert codec.find_row(enc.index.get("0"), "no such id \u00e9", layout.id_width) is None


def test_index_buckets_spread_ids():
    ids = [f"veh{i}" for i in range(5000)]
    enc = codec.encode_block(ids, {}, {})
    sizes = [len(v) // (enc.layout.id_width + 4) for v in enc.index.values()]
    assert len(sizes) == INDEX_BUCKETS
    assert max(sizes) < 2 * 5000 / INDEX_BUCKETS
    assert zlib.crc32(b"".join(enc.index[k] for k in sorted(enc.index))) != 0  # all bytes present


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blocks())
def test_store_round_trip(redis_client, key_prefix, block):
    ids, columns, text = block
    store = TwinStore(redis_client, f"{key_prefix}:{uuid.uuid4().hex[:8]}", window=2)
    frame = TickFrame(tick=0, sim_time_s=0.0, vehicle_ids=ids, vehicle_columns=columns, vehicle_text=text)
    store.write_tick(frame)
    got_ids, got_columns, got_text = store.vehicles_frame()
    assert got_ids == ids
    for name, values in columns.items():
        np.testing.assert_array_equal(got_columns[name], values)
    assert got_text == text
    for row, vid in enumerate(ids[:8]):
        state = store.vehicle(vid).state
        assert state.keys() == {*columns, *text}
        np.testing.assert_array_equal([state[c] for c in columns], [columns[c][row] for c in columns])
        assert all(state[c] == text[c][row] for c in text)


@given(
    st.lists(st.lists(st.sampled_from(["a", "bb", "c\u00e9", "dddd", "e", "ff"]), unique=True), min_size=1, max_size=6),
    st.integers(0, 2**32 - 1),
)
def test_aligned_window_mean_equals_the_per_twin_mean(id_sets, seed):
    rng = np.random.default_rng(seed)
    blocks = [(ids, rng.normal(size=(len(ids), 2))) for ids in id_sets]
    current = id_sets[-1]
    arrays = [(codec.decode_ids_bytes("\n".join(ids).encode(), len(ids)), block, ("p", "q")) for ids, block in blocks]
    means, counts = window_mean_aligned(arrays[-1][0], arrays)
    for row, vid in enumerate(current):
        samples = np.array([block[ids.index(vid)] for ids, block in blocks if vid in ids])
        assert counts[row] == len(samples)
        np.testing.assert_allclose([means["p"][row], means["q"][row]], samples.mean(axis=0), rtol=1e-12)


def _window_mean_per_column(current_ids, blocks):  # noqa: ANN001, ANN202 - the window mean as it was first written
    """Every column summed and counted on its own, whatever the blocks' columns: what the fast paths stand for."""
    n = len(current_ids)
    names = list(dict.fromkeys(col for _, _, cols in blocks for col in cols))
    sums = np.zeros((n, len(names)))
    seen = np.zeros((n, len(names)), dtype=np.int64)
    counts = np.zeros(n, dtype=np.int64)
    order = np.argsort(current_ids, kind="stable")
    sorted_ids = current_ids[order]
    for ids, table, cols in blocks:
        if not n or not len(ids):
            continue
        pos = np.minimum(np.searchsorted(sorted_ids, ids), n - 1)
        hit = sorted_ids[pos] == ids
        rows = order[pos[hit]]
        counts[rows] += 1
        at = np.ix_(rows, [names.index(col) for col in cols])
        sums[at] += table[hit]
        seen[at] += 1
    means = np.divide(sums, seen, out=np.full(sums.shape, np.nan), where=seen > 0).T.copy()
    return {col: means[j] for j, col in enumerate(names)}, counts


@given(
    st.lists(
        st.tuples(
            st.lists(st.sampled_from(["a", "bb", "c\u00e9", "dddd", "e", "ff"]), unique=True),
            st.lists(st.sampled_from(["p", "q", "r"]), unique=True, min_size=1),
        ),
        min_size=1,
        max_size=6,
    ),
    st.booleans(),
    st.integers(0, 2**32 - 1),
)
def test_aligned_window_mean_is_the_per_column_sums_to_the_bit(ticks, same_columns, seed):
    """The shortcuts (one count for every column when the ticks have the same columns, no alignment for a tick
    with the current twins in the current rows, no copy when every twin of a tick is still there) change no bit,
    NaN and infinities included."""
    rng = np.random.default_rng(seed)
    current_ids = ticks[-1][0]
    if seed % 3 == 0:  # several ticks with the current twins in the current order
        ticks = [(current_ids, cols) for _, cols in ticks]
    blocks = []
    for ids, cols in ticks:
        cols = ("p", "q") if same_columns else tuple(cols)
        table = rng.normal(scale=1e3, size=(len(ids), len(cols)))
        table[rng.random(table.shape) < 0.1] = rng.choice([np.nan, np.inf, -np.inf])
        blocks.append((codec.decode_ids_bytes("\n".join(ids).encode(), len(ids)), table, cols))
    current = blocks[-1][0]
    with np.errstate(invalid="ignore"):  # inf - inf
        means, counts = window_mean_aligned(current, blocks)
        expected, expected_counts = _window_mean_per_column(current, blocks)
    np.testing.assert_array_equal(counts, expected_counts)
    assert list(means) == list(expected)
    for col in expected:
        np.testing.assert_array_equal(means[col].view(np.int64), expected[col].view(np.int64))


@pytest.mark.parametrize("bad", [["a\nb"], ["a\x00"], [""], ["a", "a"]])
def test_bad_ids_are_refused(bad):
    with pytest.raises(ValueError):
        codec.encode_block(bad, {}, {})
