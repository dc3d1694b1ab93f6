"""Nothing user- or host-controlled breaks out of a command line (property tests).

Arbitrary strings — quotes of every kind, backticks, `$`, `%`, cmd.exe operators, newlines,
any non-NUL unicode — go through the builders, and the line is read back the way the
simulated host reads it: cmd.exe's quote state, MSVCRT argument splitting, the -EncodedCommand
decoding and the PowerShell parser. Each value must arrive verbatim, as one argument.
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from activities.windows import powershell as ps
from activities.windows import sc, wmcb
from activities.windows.paths import WindowsPath
from activities.windows.quoting import cmd_quote
from sim.windows import cmdline, paths, pwsh_parser
from sim.windows.fleet import HostSpec
from sim.windows.host import SimulatedWindowsHost

FAST = settings(max_examples=200, deadline=None)

ASCII_SPECIALS = list("'\"`$%&|<>^;(){}@#,=:-\\/ \t\r\n\v*?!~[]aZ0")
_SPECIALS = [
    *ASCII_SPECIALS,
    *"\u2018\u2019\u201a\u201b\u201c\u201d",  # typographic quotes PowerShell honours
    *"\u00a0\u2013é漢",
]
HOSTILE = st.one_of(
    st.text(alphabet=st.sampled_from(_SPECIALS), max_size=40),
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
        max_size=40,
    ),
)
CMD_UNCARRIABLE = set("%\r\n\0")


# --- reading a line back as the host does ----------------------------------------------------
def cmd_exposed(line: str) -> list[str]:
    """What cmd.exe would act on: operators outside its quote state (toggled by every `"`, no
    escapes), `%` anywhere (expanded even inside quotes), and line breaks."""
    found, quoted = [], False
    for c in line:
        if c == '"':
            quoted = not quoted
        elif c in "&|<>^" and not quoted:
            found.append(c)
        elif c in "%\r\n\0":
            found.append(c)
    return found


def script(line: str) -> str:
    assert cmd_exposed(line) == []
    argv = cmdline.split(line)
    assert [a.lower() for a in argv[:-1]][-1] == "-encodedcommand"
    return base64.b64decode(argv[-1], validate=True).decode("utf-16-le")


def commands(line: str) -> list[tuple[str, dict[str, Any], list[Any]]]:
    """(cmdlet, named values, positional values) of every command the encoded script runs."""
    statements = pwsh_parser.parse(script(line))
    assert isinstance(statements[0], pwsh_parser.Assignment)  # $ErrorActionPreference
    out = []
    for statement in statements[1:]:
        assert isinstance(statement, list)
        for command in statement:
            named: dict[str, Any] = {}
            positional: list[Any] = []
            args = list(command.args)
            while args:
                arg = args.pop(0)
                if isinstance(arg, pwsh_parser.Param):
                    if args and not isinstance(args[0], pwsh_parser.Param):
                        named[arg.name] = args.pop(0)
                    else:
                        named[arg.name] = True
                else:
                    positional.append(arg)
            out.append((str(command.name), named, positional))
    return out


# --- PowerShell builders ---------------------------------------------------------------------
@FAST
@given(path=HOSTILE, value=HOSTILE)
def test_set_content_path_and_value_arrive_verbatim(path: str, value: str) -> None:
    line = ps.powershell(ps.set_content(WindowsPath(path), value), display="write").line
    assert commands(line) == [("Set-Content", {"Path": path, "Value": value}, [])]


@FAST
@given(name=HOSTILE, binary=HOSTILE, display=HOSTILE, description=HOSTILE, dep=HOSTILE)
def test_a_new_service_definition_arrives_verbatim(
    name: str, binary: str, display: str, description: str, dep: str
) -> None:
    statement = ps.new_service(name, binary, display, description, depends_on=(dep, "kubelet"))
    ((cmdlet, named, positional),) = commands(ps.powershell(statement, display="svc").line)
    assert (cmdlet, positional) == ("New-Service", [])
    assert named == {
        "Name": name,
        "BinaryPathName": binary,
        "DisplayName": display,
        "Description": description,
        "StartupType": "Automatic",
        "DependsOn": [dep, "kubelet"],
    }


@FAST
@given(name=HOSTILE)
def test_names_given_to_service_and_machine_cmdlets_arrive_verbatim(name: str) -> None:
    for statement, cmdlet in (
        (ps.get_service(name), "Get-Service"),
        (ps.start_service(name), "Start-Service"),
        (ps.stop_service(name), "Stop-Service"),
        (ps.rename_computer(name), "Rename-Computer"),
    ):
        ((seen, named, _),) = commands(ps.powershell(statement, display="x").line)
        assert (seen, named.get("Name", named.get("NewName"))) == (cmdlet, name)


@FAST
@given(network=HOSTILE, name=HOSTILE)
def test_hns_names_arrive_verbatim_even_inside_a_pipeline(network: str, name: str) -> None:
    line = ps.powershell(
        ps.import_hns(),
        ps.new_hns_endpoint(network, name),
        ps.remove_hns_network(name),
        display="hns",
    ).line
    _, endpoint, _, where, removal = commands(line)
    assert endpoint == ("New-HnsEndpoint", {"NetworkId": network, "Name": name}, [])
    assert where == ("Where-Object", {"Property": "Name", "EQ": True, "Value": name}, [])
    assert removal == ("Remove-HnsNetwork", {}, [])


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> SimulatedWindowsHost:
    """A simulated host used in-process only (no SSH): its command interpreter and disk."""
    h = SimulatedWindowsHost(
        HostSpec(address="127.251.0.1", hostname="quoting"),
        tmp_path_factory.mktemp("quoting-host"),
        kube_ca_pem=None,
        port=22,
    )
    paths.to_local(h.root, "C:\\k").mkdir(parents=True, exist_ok=True)
    return h


ASCII_HOSTILE = st.text(alphabet=st.sampled_from(ASCII_SPECIALS), max_size=60)


@settings(max_examples=100, deadline=None)
@given(value=ASCII_HOSTILE)
def test_a_value_written_on_the_simulated_host_reads_back_byte_for_byte(
    host: SimulatedWindowsHost, value: str
) -> None:
    target = WindowsPath("C:\\k\\quoting.txt")
    line = ps.powershell(ps.set_content(target, value), display="write").line
    _, err, code = asyncio.run(host.run(line))
    assert (code, err) == (0, ""), err
    # Set-Content ends the file with a line break, as PowerShell does
    assert Path(paths.to_local(host.root, target)).read_bytes() == value.encode() + b"\r\n"


# --- cmd.exe lines (sc.exe, WMCB) ------------------------------------------------------------
@FAST
@given(arg=HOSTILE)
def test_a_cmd_quoted_argument_is_one_argument_or_refused(arg: str) -> None:
    if CMD_UNCARRIABLE & set(arg):
        with pytest.raises(ValueError, match=r"cmd\.exe"):
            cmd_quote(arg)
        return
    line = f"prog {cmd_quote(arg)} next"
    assert cmd_exposed(line) == []
    assert cmdline.split(line) == ["prog", arg, "next"]


@FAST
@given(name=HOSTILE, binary=HOSTILE, text=HOSTILE, display=HOSTILE)
def test_sc_exe_lines_carry_each_value_as_one_argument(
    name: str, binary: str, text: str, display: str
) -> None:
    if CMD_UNCARRIABLE & set(name + binary + text + display):
        with pytest.raises(ValueError):
            sc.sc_create(name, binary, display_name=display)
            sc.sc_description(name, text)
        return
    create = sc.sc_create(name, binary, depends_on=("kubelet",), display_name=display).line
    assert cmd_exposed(create) == []
    assert cmdline.split(create) == [
        "sc.exe",
        "create",
        name,
        "binPath=",
        binary,
        "start=",
        "auto",
        "depend=",
        "kubelet",
        "DisplayName=",
        display,
    ]
    description = sc.sc_description(name, text).line
    assert cmd_exposed(description) == []
    assert cmdline.split(description) == ["sc.exe", "description", name, text]


@FAST
@given(node_ip=HOSTILE)
def test_the_node_ip_given_to_wmcb_is_one_argument_or_refused(node_ip: str) -> None:
    if CMD_UNCARRIABLE & set(node_ip):
        with pytest.raises(ValueError):
            wmcb.initialize_kubelet(node_ip=node_ip)
        return
    line = wmcb.initialize_kubelet(node_ip=node_ip).line
    assert cmd_exposed(line) == []
    argv = cmdline.split(line)
    assert argv[argv.index("--node-ip") + 1] == node_ip
