"""Tokenizer and parser for the PowerShell subset the SIMULATED hosts accept.

Grammar (see sim/README.md): statements separated by `;` or newlines; each statement is
`$var = <pipeline>`, `exit <n>`, or a pipeline `cmd args | cmd args`. Arguments are named
parameters (`-Name value`, `-Name:value`, bare switches), positional values, quoted strings
(`'literal'` with `''`, `"double"` with backtick escapes and no variable expansion), barewords,
numbers, `$null`/`$true`/`$false`/`$var`, and comma arrays `a,b`. Anything else is a parse
error, so the product cannot come to rely on syntax the twin does not model.
Used by `pwsh.py`, the interpreter.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Assignment", "Command", "Exit", "Param", "ParseError", "VarRef", "parse"]

_BARE_STOP = set(" \t\r\n|;,(){}@")
# PowerShell takes the typographic single quotes for quote characters too, interchangeably.
_SINGLE_QUOTES = frozenset("'\u2018\u2019\u201a\u201b")


class ParseError(ValueError):
    """Syntax outside the supported subset."""


@dataclass(frozen=True)
class VarRef:
    name: str


@dataclass(frozen=True)
class Param:
    name: str
    value: object = None
    has_value: bool = False  # `-Name:value` form


@dataclass
class Command:
    name: str | None  # None: the pipeline starts with a value (`'x' | Set-Content ...`)
    args: list[object] = field(default_factory=list)  # Param | value


@dataclass
class Assignment:
    var: str
    pipeline: list[Command]


@dataclass
class Exit:
    code: object


@dataclass(frozen=True)
class _Tok:
    kind: str  # sep pipe comma eq param str bare var
    text: str
    quoted: bool = False


def _tokenize(script: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(script)
    while i < n:
        c = script[i]
        if c in " \t\r":
            i += 1
        elif c == "#":
            while i < n and script[i] != "\n":
                i += 1
        elif c in "\n;":
            toks.append(_Tok("sep", c))
            i += 1
        elif c == "|":
            toks.append(_Tok("pipe", c))
            i += 1
        elif c == ",":
            toks.append(_Tok("comma", c))
            i += 1
        elif c == "=" and toks and toks[-1].kind == "var":
            toks.append(_Tok("eq", c))
            i += 1
        elif c in _SINGLE_QUOTES:
            buf, i = [], i + 1
            while True:
                if i >= n:
                    raise ParseError("The string is missing the terminator: '.")
                if script[i] in _SINGLE_QUOTES:
                    if i + 1 < n and script[i + 1] in _SINGLE_QUOTES:
                        buf.append(script[i + 1])  # a doubled quote is the second one, literally
                        i += 2
                        continue
                    i += 1
                    break
                buf.append(script[i])
                i += 1
            toks.append(_Tok("str", "".join(buf), quoted=True))
        elif c == '"':
            buf, i = [], i + 1
            escapes = {"n": "\n", "r": "\r", "t": "\t", "0": "\0"}
            while True:
                if i >= n:
                    raise ParseError('The string is missing the terminator: ".')
                ch = script[i]
                if ch == "`" and i + 1 < n:
                    buf.append(escapes.get(script[i + 1], script[i + 1]))
                    i += 2
                    continue
                if ch == '"':
                    if i + 1 < n and script[i + 1] == '"':
                        buf.append('"')
                        i += 2
                        continue
                    i += 1
                    break
                if ch == "$" and i + 1 < n and (script[i + 1].isalpha() or script[i + 1] in "{(_"):
                    raise ParseError(
                        "variable expansion in double-quoted strings is not modelled by the "
                        "simulated host; use single quotes"
                    )
                buf.append(ch)
                i += 1
            toks.append(_Tok("str", "".join(buf), quoted=True))
        elif c == "$":
            j = i + 1
            while j < n and (script[j].isalnum() or script[j] in "_:"):
                j += 1
            if j == i + 1:
                raise ParseError(f"unsupported syntax at '{script[i : i + 10]}'")
            toks.append(_Tok("var", script[i + 1 : j]))
            i = j
        elif c in "(){}@":
            raise ParseError(f"unsupported syntax '{c}' (the simulated host models a subset)")
        else:
            j = i
            while j < n and script[j] not in _BARE_STOP and script[j] not in _SINGLE_QUOTES | {'"'}:
                j += 1
            word = script[i:j]
            if word.startswith("-") and len(word) > 1 and (word[1].isalpha() or word[1] == "_"):
                toks.append(_Tok("param", word[1:]))
            else:
                toks.append(_Tok("bare", word))
            i = j
    return toks


def _literal(tok: _Tok) -> object:
    if tok.kind == "var":
        low = tok.text.lower()
        return {"null": None, "true": True, "false": False}.get(low, VarRef(tok.text))
    if tok.kind == "bare":
        try:
            return int(tok.text)
        except ValueError:
            return tok.text
    return tok.text


class _Parser:
    def __init__(self, toks: list[_Tok]) -> None:
        self.toks = toks
        self.pos = 0

    def peek(self, offset: int = 0) -> _Tok | None:
        p = self.pos + offset
        return self.toks[p] if p < len(self.toks) else None

    def take(self) -> _Tok:
        tok = self.toks[self.pos]
        self.pos += 1
        return tok

    def value(self) -> object:
        tok = self.peek()
        if tok is None or tok.kind not in ("str", "bare", "var"):
            raise ParseError("Missing expression after ','.")
        first = _literal(self.take())
        if self.peek() is None or self.peek().kind != "comma":  # type: ignore[union-attr]
            return first
        items = [first]
        while self.peek() is not None and self.peek().kind == "comma":  # type: ignore[union-attr]
            self.take()
            nxt = self.peek()
            if nxt is None or nxt.kind not in ("str", "bare", "var"):
                raise ParseError("Missing expression after ','.")
            items.append(_literal(self.take()))
        return items

    def command(self) -> Command:
        tok = self.peek()
        if tok is None or tok.kind in ("sep", "pipe"):
            raise ParseError("An empty pipe element is not allowed.")
        if tok.kind == "bare":
            cmd = Command(self.take().text)
        elif tok.kind in ("str", "var"):
            cmd = Command(None, [self.value()])
            nxt = self.peek()
            if nxt is not None and nxt.kind not in ("sep", "pipe"):
                raise ParseError(f"Unexpected token '{nxt.text}' in expression or statement.")
            return cmd
        else:
            raise ParseError(f"Unexpected token '{tok.text}'.")
        while (tok := self.peek()) is not None and tok.kind not in ("sep", "pipe"):
            if tok.kind == "param":
                self.take()
                name, _, inline = tok.text.partition(":")
                if inline or tok.text.endswith(":"):
                    val = self.value() if not inline else _literal(_Tok("bare", inline))
                    cmd.args.append(Param(name, val, has_value=True))
                else:
                    cmd.args.append(Param(name))
            elif tok.kind in ("str", "bare", "var"):
                cmd.args.append(self.value())
            else:
                raise ParseError(f"Unexpected token '{tok.text}' in expression or statement.")
        return cmd

    def pipeline(self) -> list[Command]:
        cmds = [self.command()]
        while self.peek() is not None and self.peek().kind == "pipe":  # type: ignore[union-attr]
            self.take()
            cmds.append(self.command())
        return cmds

    def statements(self) -> list[object]:
        out: list[object] = []
        while self.peek() is not None:
            tok = self.peek()
            assert tok is not None
            if tok.kind == "sep":
                self.take()
                continue
            nxt = self.peek(1)
            if tok.kind == "var" and nxt is not None and nxt.kind == "eq":
                self.take()
                self.take()
                out.append(Assignment(tok.text, self.pipeline()))
            elif tok.kind == "bare" and tok.text.lower() == "exit":
                self.take()
                code: object = 0
                if self.peek() is not None and self.peek().kind != "sep":  # type: ignore[union-attr]
                    code = _literal(self.take())
                out.append(Exit(code))
            else:
                out.append(self.pipeline())
            after = self.peek()
            if after is not None and after.kind != "sep":
                raise ParseError(f"Unexpected token '{after.text}' in expression or statement.")
        return out


def parse(script: str) -> list[object]:
    """Parse a script into statements: `list[Command]` pipelines, `Assignment`s, `Exit`s."""
    return _Parser(_tokenize(script)).statements()
