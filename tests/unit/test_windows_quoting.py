"""PowerShell and cmd.exe quoting: exact outputs, and round trips through the twin's parsers."""

from __future__ import annotations

import pytest

from activities.windows.quoting import cmd_quote, ps_quote
from sim.windows import cmdline, pwsh_parser


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("", "''"),
        ("plain", "'plain'"),
        (r"C:\k\kubelet.exe", r"'C:\k\kubelet.exe'"),
        ("it's", "'it''s'"),
        ("''", "''''''"),
        ("$env:PATH `n", "'$env:PATH `n'"),
        ('say "hi"', "'say \"hi\"'"),
        ("typographic \u2019 quote", "'typographic \u2019\u2019 quote'"),
    ],
)
def test_ps_quote_makes_a_single_quoted_literal(value: str, quoted: str) -> None:
    assert ps_quote(value) == quoted


@pytest.mark.parametrize(
    ("arg", "quoted"),
    [
        ("kubelet", "kubelet"),
        (r"C:\k\kubelet.exe", r"C:\k\kubelet.exe"),
        (
            "--feature-gates=WinOverlay=true,WinDSR=true",
            "--feature-gates=WinOverlay=true,WinDSR=true",
        ),
        ("", '""'),
        ("two words", '"two words"'),
        ('a"b', '"a""b"'),
        (r"C:\Program Files\x\\", '"C:\\Program Files\\x\\\\\\\\"'),
        ('back\\"slash', r'"back\\""slash"'),
        ("a&b", '"a&b"'),
        ("x|y", '"x|y"'),
    ],
)
def test_cmd_quote_quotes_only_when_needed(arg: str, quoted: str) -> None:
    assert cmd_quote(arg) == quoted


@pytest.mark.parametrize(
    "arg",
    [
        "",
        "simple",
        "two words",
        'inner "quotes" here',
        "trailing backslash\\",
        'backslash before quote\\"',
        r"C:\Program Files\kube proxy\kube-proxy.exe --v=2",
        "ops & pipes | redirects > <",
        "tab\there",
    ],
)
def test_a_cmd_quoted_argument_splits_back_to_itself(arg: str) -> None:
    line = "prog " + cmd_quote(arg) + " next"
    assert cmdline.split(line) == ["prog", arg, "next"]
    assert cmdline.unquoted_operator(line) is None


@pytest.mark.parametrize("value", ["", "it's", "a'';b", "x | y; z", "$null", "#comment", "a,b"])
def test_a_ps_quoted_value_parses_back_to_one_string(value: str) -> None:
    (pipeline,) = pwsh_parser.parse("Write-Output " + ps_quote(value))
    assert pipeline == [pwsh_parser.Command(name="Write-Output", args=[value])]
