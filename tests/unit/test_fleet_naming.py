"""Generated node names of a pool: `<pool>-<5 chars>`, Windows computer-name safe, never taken."""

from __future__ import annotations

import itertools
import random

import pytest

from workflows.fleet.naming import ALPHABET, new_node_name


@pytest.mark.parametrize("pool", ["web", "a", "webfarm01", "w-1"])
def test_a_name_is_the_pool_a_dash_and_five_generate_name_characters(pool: str) -> None:
    name = new_node_name(pool, random.Random(7))
    prefix, _, suffix = name.rpartition("-")
    assert prefix == pool and len(suffix) == 5 and set(suffix) <= set(ALPHABET)
    assert len(name) <= 15 and name == name.lower() and not name.isdigit()


def test_the_same_random_source_gives_the_same_name_as_a_replayed_workflow_needs() -> None:
    assert new_node_name("web", random.Random(42)) == new_node_name("web", random.Random(42))


def test_a_callable_like_workflow_random_random_works_too() -> None:
    values = itertools.cycle([0.0, 0.5, 0.999])
    name = new_node_name("web", lambda: next(values))
    assert name == "web-" + ALPHABET[0] + ALPHABET[13] + ALPHABET[26] + ALPHABET[0] + ALPHABET[13]


def test_a_taken_name_is_never_returned() -> None:
    # the first two draws both spell web-bbbbb, which is taken; the third is free
    draws = itertools.chain([0.0] * 10, itertools.repeat(0.99))
    name = new_node_name("web", lambda: next(draws), {"web-bbbbb"})
    assert name == "web-99999"


@pytest.mark.parametrize("pool", ["webfarm-01", "", "1web"])
def test_a_pool_name_that_cannot_prefix_windows_names_is_refused(pool: str) -> None:
    with pytest.raises(ValueError, match="cannot prefix node names"):
        new_node_name(pool, random.Random(1))


def test_a_pool_whose_names_are_all_taken_is_refused_rather_than_looping() -> None:
    with pytest.raises(ValueError, match="no free node name"):
        new_node_name("web", lambda: 0.0, {"web-bbbbb"})
