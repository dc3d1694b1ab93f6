"""Reading an icacls listing: who besides Administrators and SYSTEM may reach a folder."""

from __future__ import annotations

import pytest

from activities.lockdown import others_in_acl
from activities.windows.paths import K_DIR

FRESH = r"""C:\k BUILTIN\Administrators:(I)(OI)(CI)(F)
     NT AUTHORITY\SYSTEM:(I)(OI)(CI)(F)
     BUILTIN\Users:(I)(OI)(CI)(RX)
     NT AUTHORITY\Authenticated Users:(I)(M)

Successfully processed 1 files; Failed processing 0 files
"""
LOCKED = r"""C:\k BUILTIN\Administrators:(OI)(CI)(F)
     NT AUTHORITY\SYSTEM:(OI)(CI)(F)

Successfully processed 1 files; Failed processing 0 files
"""


@pytest.mark.parametrize(
    ("listing", "others"),
    [
        (FRESH, 4),  # inherited ACEs count, and Users/Authenticated Users may read
        (LOCKED, 0),
        (LOCKED.replace("SYSTEM:(OI)", "SYSTEM:(I)(OI)"), 1),
        (LOCKED + "     Everyone:(R)\n", 1),
    ],
    ids=["fresh-folder", "locked", "inherited-system", "everyone"],
)
def test_anyone_but_administrators_and_system_or_inheritance_shows(
    listing: str, others: int
) -> None:
    assert len(others_in_acl(listing, K_DIR)) == others
