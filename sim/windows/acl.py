"""NTFS security descriptors of a SIMULATED Windows host: owner, DACL, inheritance.

Every file and directory has an owner and a DACL. A path's ACL is its explicit ACEs plus, unless
inheritance is removed ("protected"), the ACEs it inherits from its parent, computed the way
Windows propagates them: an `(OI)` ACE reaches files, a `(CI)` ACE reaches directories (still
inheritable), `(NP)` stops after one level, and an ACE stored with generic rights (C:\\'s
`Authenticated Users:(OI)(CI)(IO)(M)`) or for `CREATOR OWNER` is split into an effective ACE and
an inherit-only one, as `icacls` shows under a new folder of C:\\. Inherited ACEs follow the
parent live (what Windows' auto-propagation does when a parent's DACL changes).

Well-known directories start with the ACLs a Windows Server 2019/2022 image has (C:\\,
C:\\ProgramData, C:\\Users, C:\\Users\\<admin>; C:\\Windows and C:\\Program Files approximated).
Only explicit security descriptors are stored (`acl.json` beside the disk; a deleted path forgets
its own). Used by `icacls.py` (change and list), `openssh.py` (the sshd file check and the
`C:\\ProgramData\\ssh` folder), the file cmdlets and SFTP (forget deleted paths).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from sim.windows import paths

# ---- principals ---------------------------------------------------------------------------
SYSTEM = "S-1-5-18"
ADMINISTRATORS = "S-1-5-32-544"
USERS = "S-1-5-32-545"
AUTHENTICATED_USERS = "S-1-5-11"
EVERYONE = "S-1-1-0"
CREATOR_OWNER = "S-1-3-0"
TRUSTED_INSTALLER = "S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464"
MACHINE_SID = "S-1-5-21-2034511256-1731271735-3178546122"  # the twin's hosts share one
ADMIN_RID = 500  # the built-in administrator (renamed to the admin user on Azure)

WELL_KNOWN: dict[str, str] = {
    SYSTEM: "NT AUTHORITY\\SYSTEM",
    ADMINISTRATORS: "BUILTIN\\Administrators",
    USERS: "BUILTIN\\Users",
    AUTHENTICATED_USERS: "NT AUTHORITY\\Authenticated Users",
    EVERYONE: "Everyone",
    CREATOR_OWNER: "CREATOR OWNER",
    TRUSTED_INSTALLER: "NT SERVICE\\TrustedInstaller",
}

# ---- access rights (winnt.h) --------------------------------------------------------------
RD, WD, AD, REA, WEA, X, DC, RA, WA = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x40, 0x80, 0x100
DE, RC, WDAC, WO, S = 0x10000, 0x20000, 0x40000, 0x80000, 0x100000
GA, GE, GW, GR = 0x10000000, 0x20000000, 0x40000000, 0x80000000
FULL = 0x1F01FF
MODIFY = 0x1301BF
READ_EXECUTE = 0x1200A9
READ = 0x120089
WRITE = 0x100116
# What sshd (Win32-OpenSSH) counts as write access.
WRITE_CLASS = WD | AD | WEA | WA | WDAC | WO | DE
SIMPLE = (("F", FULL), ("M", MODIFY), ("RX", READ_EXECUTE), ("R", READ), ("W", WRITE))
# icacls' specific-right names, in the order it prints them.
SPECIFIC = (
    ("DE", DE), ("Rc", RC), ("WDAC", WDAC), ("WO", WO), ("S", S),
    ("GR", GR), ("GW", GW), ("GE", GE), ("GA", GA),
    ("RD", RD), ("WD", WD), ("AD", AD), ("REA", REA), ("WEA", WEA),
    ("X", X), ("DC", DC), ("RA", RA), ("WA", WA),
)  # fmt: skip
FLAGS_ORDER = ("OI", "CI", "IO", "NP")


@dataclass(frozen=True)
class Ace:
    sid: str
    mask: int
    allow: bool = True
    flags: frozenset[str] = frozenset()  # OI CI IO NP
    inherited: bool = False
    generic: bool = False  # stored with generic rights: splits when a container inherits it

    def to_json(self) -> list[object]:
        return [self.sid, self.mask, self.allow, sorted(self.flags), self.generic]

    @classmethod
    def from_json(cls, raw: list[object]) -> Ace:
        sid, mask, allow, flags, generic = raw
        return cls(str(sid), int(mask), bool(allow), frozenset(flags), False, bool(generic))  # type: ignore[arg-type, call-overload]


@dataclass
class Descriptor:
    owner: str
    protected: bool = False
    explicit: list[Ace] = field(default_factory=list)


@dataclass(frozen=True)
class Acl:
    """A path's effective security: owner, whether inheritance is removed, ACEs in order."""

    owner: str
    protected: bool
    aces: tuple[Ace, ...]


def rights_text(mask: int) -> str:
    """`F`, `M`, `RX`, `R`, `W`, or icacls' list of specific rights (`WD,AD,WEA,WA`)."""
    for name, value in SIMPLE:
        if mask == value:
            return name
    names = [name for name, bit in SPECIFIC if mask & bit]
    return ",".join(names)


def ace_text(ace: Ace) -> str:
    """An ACE after the principal's colon, as icacls prints it: `(I)(OI)(CI)(RX)`."""
    parts = ["(I)"] if ace.inherited else []
    parts += [f"({f})" for f in FLAGS_ORDER if f in ace.flags]
    parts += [] if ace.allow else ["(DENY)"]
    return "".join(parts) + f"({rights_text(ace.mask)})"


def _a(sid: str, mask: int, flags: str = "", generic: bool = False, allow: bool = True) -> Ace:
    return Ace(sid, mask, allow, frozenset(f for f in flags.split(",") if f), False, generic)


_OICI = "OI,CI"
_PROGRAM_FILES = [
    _a(TRUSTED_INSTALLER, FULL),
    _a(TRUSTED_INSTALLER, FULL, "CI,IO"),
    _a(SYSTEM, MODIFY),
    _a(SYSTEM, FULL, "OI,CI,IO"),
    _a(ADMINISTRATORS, MODIFY),
    _a(ADMINISTRATORS, FULL, "OI,CI,IO"),
    _a(USERS, READ_EXECUTE),
    _a(USERS, READ_EXECUTE, "OI,CI,IO"),
    _a(CREATOR_OWNER, FULL, "OI,CI,IO"),
]


def default_descriptors() -> dict[str, Descriptor]:
    """The image's ACLs of well-known directories (lowercase Windows path -> descriptor)."""
    return {
        "c:\\": Descriptor(
            TRUSTED_INSTALLER,
            True,
            [
                _a(ADMINISTRATORS, FULL, _OICI),
                _a(SYSTEM, FULL, _OICI),
                _a(USERS, READ_EXECUTE, _OICI),
                _a(AUTHENTICATED_USERS, MODIFY, "OI,CI,IO", generic=True),
                _a(AUTHENTICATED_USERS, AD),
            ],
        ),
        "c:\\programdata": Descriptor(
            SYSTEM,
            True,
            [
                _a(SYSTEM, FULL, _OICI),
                _a(ADMINISTRATORS, FULL, _OICI),
                _a(CREATOR_OWNER, FULL, "OI,CI,IO"),
                _a(USERS, READ_EXECUTE, _OICI),
                _a(USERS, WD | AD | WEA | WA, "CI"),
            ],
        ),
        "c:\\program files": Descriptor(TRUSTED_INSTALLER, True, list(_PROGRAM_FILES)),
        "c:\\windows": Descriptor(TRUSTED_INSTALLER, True, list(_PROGRAM_FILES)),
        "c:\\users": Descriptor(
            SYSTEM,
            True,
            [
                _a(SYSTEM, FULL, _OICI),
                _a(ADMINISTRATORS, FULL, _OICI),
                _a(USERS, READ_EXECUTE),
                _a(USERS, READ_EXECUTE, "OI,CI,IO", generic=True),
                _a(EVERYONE, READ_EXECUTE),
                _a(EVERYONE, READ_EXECUTE, "OI,CI,IO", generic=True),
            ],
        ),
    }


def _key(win_path: str) -> str:
    drive, parts = paths.split_windows(win_path)
    return f"{drive.lower()}:\\" + "\\".join(p.lower() for p in parts)


def _parent_key(key: str) -> str | None:
    if key.endswith(":\\"):
        return None
    head = key.rsplit("\\", 1)[0]
    return head + "\\" if head.endswith(":") else head


def _inherit(parent: tuple[Ace, ...], child_is_dir: bool, child_owner: str) -> list[Ace]:
    out: list[Ace] = []
    for ace in parent:
        splits = ace.generic or ace.sid == CREATOR_OWNER
        effective_sid = child_owner if ace.sid == CREATOR_OWNER else ace.sid
        base = replace(ace, inherited=True)
        if child_is_dir and "CI" in ace.flags:
            if "NP" in ace.flags:
                out.append(replace(base, sid=effective_sid, flags=frozenset(), generic=False))
            elif splits:
                out.append(replace(base, sid=effective_sid, flags=frozenset(), generic=False))
                out.append(replace(base, flags=ace.flags | {"IO"}))
            else:
                out.append(replace(base, flags=ace.flags - {"IO"}))
        elif child_is_dir and "OI" in ace.flags and "NP" not in ace.flags:
            out.append(replace(base, flags=frozenset({"OI", "IO"})))
        elif not child_is_dir and "OI" in ace.flags:
            out.append(replace(base, sid=effective_sid, flags=frozenset(), generic=False))
    return out


def canonical(aces: list[Ace]) -> tuple[Ace, ...]:
    """Explicit deny, explicit allow, inherited deny, inherited allow (order kept within)."""
    rank = {(False, False): 0, (False, True): 1, (True, False): 2, (True, True): 3}
    return tuple(sorted(aces, key=lambda a: rank[(a.inherited, a.allow)]))


class AclStore:
    """One host's security descriptors (explicit ones persisted in `acl.json`)."""

    def __init__(self, root: Path, state_file: Path) -> None:
        self._root = root
        self._file = state_file
        self._defaults = default_descriptors()
        self._stored: dict[str, Descriptor] = {}
        if state_file.exists():
            for key, raw in json.loads(state_file.read_text()).items():
                self._stored[key] = Descriptor(
                    raw["owner"], raw["protected"], [Ace.from_json(a) for a in raw["explicit"]]
                )

    def add_default(self, win_path: str, descriptor: Descriptor) -> None:
        """A directory the image (or an installer) created with its own ACL."""
        self._defaults[_key(win_path)] = descriptor

    def _save(self) -> None:
        self._file.parent.mkdir(parents=True, exist_ok=True)
        data = {
            k: {
                "owner": d.owner,
                "protected": d.protected,
                "explicit": [a.to_json() for a in d.explicit],
            }
            for k, d in self._stored.items()
        }
        self._file.write_text(json.dumps(data, indent=1))

    def _descriptor(self, key: str) -> Descriptor:
        found = self._stored.get(key) or self._defaults.get(key)
        if found is not None:
            return found
        return Descriptor(ADMINISTRATORS)  # created by an administrator

    def _is_dir(self, key: str) -> bool:
        try:
            return key.endswith(":\\") or paths.to_local(self._root, key).is_dir()
        except paths.PathError:
            return False

    def acl(self, win_path: str) -> Acl:
        """The effective ACL of a path (explicit + inherited), as `icacls` lists it."""
        return self._acl(_key(win_path))

    def _acl(self, key: str) -> Acl:
        desc = self._descriptor(key)
        aces = list(desc.explicit)
        parent = _parent_key(key)
        if not desc.protected and parent is not None:
            aces += _inherit(self._acl(parent).aces, self._is_dir(key), desc.owner)
        return Acl(desc.owner, desc.protected, canonical(aces))

    def update(self, win_path: str, descriptor: Descriptor) -> None:
        explicit = [replace(a, inherited=False) for a in descriptor.explicit]
        self._stored[_key(win_path)] = Descriptor(descriptor.owner, descriptor.protected, explicit)
        self._save()

    def explicit(self, win_path: str) -> Descriptor:
        """A copy of the path's own descriptor (what icacls edits)."""
        desc = self._descriptor(_key(win_path))
        return Descriptor(desc.owner, desc.protected, list(desc.explicit))

    def forget(self, win_path: str) -> None:
        """The path was deleted: it and everything below lose their own descriptors."""
        key = _key(win_path)
        gone = [k for k in self._stored if k == key or k.startswith(key.rstrip("\\") + "\\")]
        for k in gone:
            del self._stored[k]
        if gone:
            self._save()
