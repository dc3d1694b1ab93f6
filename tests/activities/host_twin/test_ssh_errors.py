"""How asyncssh and socket failures become winfleet errors (the one translation table)."""

from __future__ import annotations

import asyncssh
import pytest

from activities.errors import (
    HostKeyMismatch,
    HostUnreachable,
    RemoteCommandFailed,
    SshAuthenticationFailed,
    TransferInterrupted,
    WinfleetError,
)
from activities.ssh import _PinningPolicy, _translate

PINNED = asyncssh.generate_private_key("ssh-ed25519").convert_to_public()


@pytest.mark.parametrize(
    ("exc", "transfer", "expected"),
    [
        (ConnectionRefusedError(111, "Connection refused"), False, HostUnreachable),
        (TimeoutError(), False, HostUnreachable),
        (ConnectionResetError(104, "reset"), True, TransferInterrupted),
        (asyncssh.ConnectionLost("gone"), False, HostUnreachable),
        (asyncssh.ConnectionLost("gone"), True, TransferInterrupted),
        (asyncssh.SFTPConnectionLost("dropped"), True, TransferInterrupted),
        (asyncssh.SFTPNoSuchFile("no dir"), True, RemoteCommandFailed),
        (asyncssh.PermissionDenied("auth failed"), False, SshAuthenticationFailed),
        (asyncssh.HostKeyNotVerifiable("not trusted"), False, HostKeyMismatch),
        (
            asyncssh.KeyExchangeFailed("No matching host key algorithm found, sent a and b"),
            False,
            HostKeyMismatch,
        ),
        (asyncssh.KeyExchangeFailed("No matching encryption algorithm"), False, HostUnreachable),
    ],
)
def test_each_library_failure_maps_to_one_winfleet_error(
    exc: BaseException, transfer: bool, expected: type[WinfleetError]
) -> None:
    translated = _translate(
        exc, "127.4.9.9", "doing it", transfer=transfer, policy=_PinningPolicy(PINNED)
    )
    assert type(translated) is expected
    assert "127.4.9.9" in translated.message
    assert "doing it" in translated.message


def test_permanent_and_retryable_follow_what_the_caller_should_do() -> None:
    def kind(exc: BaseException) -> bool:
        return _translate(exc, "h", "x", policy=_PinningPolicy(PINNED)).retryable

    assert kind(ConnectionRefusedError()) is True
    assert kind(asyncssh.PermissionDenied("no")) is False
    assert kind(asyncssh.HostKeyNotVerifiable("no")) is False


def test_first_contact_accepts_any_key_but_a_pinned_host_only_its_own() -> None:
    other = asyncssh.generate_private_key("ssh-ed25519").convert_to_public()
    assert _PinningPolicy(None).validate_host_public_key("h", "h", 22, other)
    policy = _PinningPolicy(PINNED)
    assert not policy.validate_host_public_key("h", "h", 22, other)
    assert policy.refused is other
