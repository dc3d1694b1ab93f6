"""`winfleet upgrade|pause|resume|status|set-max-unhealthy`: what the command line accepts."""

from __future__ import annotations

import pytest

from worker.cli import main, parser
from worker.rollout_control import max_unhealthy_value


def test_upgrade_takes_a_pool_a_version_and_its_switches() -> None:
    args = parser().parse_args(["upgrade", "--pool", "web", "--version", "1.1.0", "--dry-run"])
    assert (args.command, args.pool, args.version, args.dry_run, args.detach) == (
        "upgrade",
        "web",
        "1.1.0",
        True,
        False,
    )
    plain = parser().parse_args(["upgrade", "--pool", "web", "--detach"])
    assert (plain.version, plain.dry_run, plain.detach) == ("", False, True)


@pytest.mark.parametrize(
    "argv",
    [
        ["upgrade"],
        ["pause"],
        ["resume"],
        ["set-max-unhealthy", "--pool", "web"],
        ["set-max-unhealthy", "2"],
    ],
)
def test_a_command_missing_its_pool_or_value_is_refused(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        parser().parse_args(argv)
    assert info.value.code == 2
    assert "required" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["Web", "web_1", "1web", "web-", "averylongname", "we'b"])
def test_a_name_that_cannot_name_a_pool_is_refused_before_anything_is_asked(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        parser().parse_args(["pause", "--pool", name])
    assert info.value.code == 2
    assert "is not a pool name" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "value"),
    [("2", 2), (" 3 ", 3), ("0", 0), ("-1", -1), ("25%", "25%"), ("abc", "abc"), ("2.5", "2.5")],
)
def test_max_unhealthy_counts_go_as_numbers_and_everything_else_as_text(
    text: str, value: int | str
) -> None:
    assert max_unhealthy_value(text) == value


def test_set_max_unhealthy_takes_a_negative_number_as_its_value() -> None:
    args = parser().parse_args(["set-max-unhealthy", "--pool", "web", "-1"])
    assert (args.pool, args.value) == ("web", "-1")


def test_status_takes_workflow_ids_a_pool_or_both() -> None:
    assert parser().parse_args(["status", "onboard-a-b"]).workflow_ids == ["onboard-a-b"]
    both = parser().parse_args(["status", "--pool", "web", "x"])
    assert (both.pool, both.workflow_ids) == ("web", ["x"])


def test_status_with_neither_says_what_it_needs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status"]) == 2
    assert "name workflow IDs or --pool POOL" in capsys.readouterr().err
