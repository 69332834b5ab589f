"""Weighted routing through an alias: the pure choice, and the service with an injected Random."""

from __future__ import annotations

import random

import pytest

from lamina.model import LATEST, AliasChanges, Arns, FunctionConfig, NewAlias
from lamina.service.aliases import AliasService, pick_version
from lamina.store.sqlite import SqliteStore


@pytest.mark.parametrize("draw,expected", [
    (0.0, "2"), (0.2999, "2"), (0.3, "1"), (0.9999, "1"),
])
def test_pick_version_gives_the_additional_version_the_bottom_of_the_interval(draw, expected):
    assert pick_version("1", (("2", 0.3),), draw) == expected


def test_pick_version_without_routing_is_the_primary():
    assert pick_version("7", (), 0.0) == "7"


@pytest.mark.parametrize("weight,expected", [(0.0, "1"), (1.0, "2")])
def test_pick_version_at_the_extremes(weight, expected):
    assert {pick_version("1", (("2", weight),), d / 100) for d in range(100)} == {expected}


class FixedDraws(random.Random):
    """A Random whose random() returns the given values in turn."""

    def __init__(self, draws: list[float]) -> None:
        super().__init__(0)
        self._draws = list(draws)

    def random(self) -> float:
        return self._draws.pop(0)


def service(tmp_path, rng: random.Random) -> AliasService:
    store = SqliteStore(tmp_path / "lamina.db")
    base = FunctionConfig(name="f", runtime="python3.11", handler="app.handler", role="r", code_sha256="00",
                          code_size=1, revision_id="r0", last_modified=0.0)
    for version in (LATEST, "1", "2"):
        if version == LATEST:
            store.create_function(base, {})
        else:
            store.publish_version(store.get_function("f", LATEST), lambda n: base.replace(version=n, revision_id=n),
                                  f"latest-{version}")
    return AliasService(store, Arns("us-east-1", "000000000000"), rng)


def test_route_uses_the_injected_random(tmp_path):
    aliases = service(tmp_path, FixedDraws([0.05, 0.95, 0.2, 0.25]))
    aliases.create("f", NewAlias("canary", "1", routing=(("2", 0.25),)))
    assert [aliases.route("f", "canary") for _ in range(4)] == ["2", "1", "2", "1"]


def test_route_splits_by_weight_with_a_seeded_random(tmp_path):
    aliases = service(tmp_path, random.Random(1234))
    aliases.create("f", NewAlias("canary", "1", routing=(("2", 0.1),)))
    picks = [aliases.route("f", "canary") for _ in range(10_000)]
    assert 850 <= picks.count("2") <= 1150


def test_route_follows_an_update(tmp_path):
    """The routing cache is dropped when the alias changes."""
    aliases = service(tmp_path, FixedDraws([0.5, 0.5]))
    aliases.create("f", NewAlias("live", "1"))
    assert aliases.route("f", "live") == "1"
    aliases.update("f", "live", AliasChanges(function_version="2"))
    assert aliases.route("f", "live") == "2"


def test_version_numbers_are_not_reused_after_deletion(tmp_path):
    aliases = service(tmp_path, random.Random(0))
    store = aliases._store
    store.delete_version("f", "2")
    latest = store.get_function("f", LATEST)
    third = store.publish_version(latest, lambda n: latest.replace(version=n), "latest-3")
    assert third is not None and third.version == "3"
