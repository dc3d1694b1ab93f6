"""Tokenizer and parser for the PowerShell subset the SIMULATED hosts accept.

Grammar (see sim/README.md): statements separated by `;` or newlines; each statement is
`$var = <expression or pipeline>`, `exit <n>`, or a pipeline `cmd args | cmd args`. Arguments are
named parameters (`-Name value`, `-Name:value`, bare switches), positional values, quoted
strings (`'literal'` with `''`; `"expandable"` with backtick escapes, `$var`, `$env:NAME`,
`${name}` and `$( ... )` subexpressions), barewords (which expand variables too, as in
`$env:ProgramData\\ssh`), numbers, `$null`/`$true`/`$false`/`$var`, member access (`$x.Name`,
`(...).Name`), parenthesised pipelines `( ... )`, `$( ... )`, comma arrays `a,b` and `a + b`
(spaces around `+`). Anything else is a parse error, so nothing can come to rely on syntax the
twin does not model. Used by `pwsh.py`, the interpreter.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "Assignment",
    "Command",
    "Exit",
    "Expandable",
    "Member",
    "Param",
    "ParenExpr",
    "ParseError",
    "SubExpr",
    "Sum",
    "VarRef",
    "parse",
]

_BARE_STOP = set(" \t\r\n|;,(){}@$")
_SCOPES = {"env", "global", "script", "local", "private", "using"}
_VALUE_KINDS = ("str", "expand", "bare", "var", "lparen", "subexpr")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "0": "\0", "a": "\a", "b": "\b", "e": "\x1b"}
# PowerShell takes the typographic single quotes for quote characters too, interchangeably.
_SINGLE_QUOTES = frozenset("'\u2018\u2019\u201a\u201b")


class ParseError(ValueError):
    """Syntax outside the supported subset."""


@dataclass(frozen=True)
class VarRef:
    name: str  # as written, scope included: "x", "env:ProgramData"


@dataclass(frozen=True)
class Member:
    target: object
    name: str


@dataclass(frozen=True)
class Expandable:
    """A double-quoted string or a bareword with variables: literal parts and references."""

    parts: tuple[object, ...]


@dataclass
class SubExpr:
    """`$( statements )`."""

    statements: list[object]


@dataclass
class ParenExpr:
    """`( pipeline )`."""

    pipeline: list[Command]


@dataclass
class Sum:
    terms: list[object]


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
    kind: str  # sep pipe comma eq plus param str expand bare var member lparen rparen subexpr
    text: str
    value: object = None
    glued: bool = False  # no whitespace before it


def _var_name(script: str, i: int) -> tuple[str, int]:
    """The variable name starting at `i` (just after `$`); returns (name, end)."""
    n = len(script)
    if i < n and script[i] == "{":
        end = script.find("}", i)
        if end < 0:
            raise ParseError("Missing closing '}' in statement block or type definition.")
        return script[i + 1 : end], end + 1
    j = i
    while j < n and (script[j].isalnum() or script[j] in "_?"):
        j += 1
    if j < n and script[j] == ":" and script[i:j].lower() in _SCOPES:
        k = j + 1
        while k < n and (script[k].isalnum() or script[k] in "_"):
            k += 1
        if k == j + 1:
            raise ParseError(
                "Variable reference is not valid. ':' was not followed by a valid variable name "
                "character. Consider using ${} to delimit the name."
            )
        j = k
    if j < n and script[j] == ":" and j > i:
        raise ParseError(
            "Variable reference is not valid. ':' was not followed by a valid variable name "
            "character. Consider using ${} to delimit the name."
        )
    return script[i:j], j


def _closing_paren(script: str, i: int) -> int:
    """Index of the `)` matching the `(` at `i`, skipping quoted strings."""
    depth, j, n = 0, i, len(script)
    while j < n:
        c = script[j]
        if c in "'\"":
            end = script.find(c, j + 1)
            if end < 0:
                break
            j = end
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return j
        j += 1
    raise ParseError("Missing closing ')' in subexpression.")


def _double_quoted(script: str, i: int) -> tuple[object, int]:
    """Parse `"..."` starting after the opening quote: a str, or an Expandable."""
    parts: list[object] = []
    buf: list[str] = []
    n = len(script)
    while True:
        if i >= n:
            raise ParseError('The string is missing the terminator: ".')
        ch = script[i]
        if ch == "`" and i + 1 < n:
            buf.append(_ESCAPES.get(script[i + 1], script[i + 1]))
            i += 2
        elif ch == '"':
            if i + 1 < n and script[i + 1] == '"':
                buf.append('"')
                i += 2
                continue
            i += 1
            break
        elif ch == "$" and i + 1 < n and script[i + 1] == "(":
            end = _closing_paren(script, i + 1)
            parts.extend(["".join(buf), SubExpr(parse(script[i + 2 : end]))])
            buf, i = [], end + 1
        elif ch == "$" and i + 1 < n and (script[i + 1].isalpha() or script[i + 1] in "_{"):
            name, i = _var_name(script, i + 1)
            parts.extend(["".join(buf), VarRef(name)])
            buf = []
        else:
            buf.append(ch)
            i += 1
    parts.append("".join(buf))
    kept = tuple(p for p in parts if p != "")
    if all(isinstance(p, str) for p in kept):
        return "".join(kept), i  # type: ignore[arg-type]
    return Expandable(kept), i


def _tokenize(script: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(script)
    while i < n:
        c = script[i]
        glued = i > 0 and script[i - 1] not in " \t\r\n"
        if c in " \t\r":
            i += 1
        elif c == "`" and i + 1 < n and script[i + 1] in "\r\n":
            i += 2  # line continuation
        elif c == "#":
            while i < n and script[i] != "\n":
                i += 1
        elif c in "\n;":
            toks.append(_Tok("sep", c))
            i += 1
        elif c in "|,()":
            kind = {"|": "pipe", ",": "comma", "(": "lparen", ")": "rparen"}[c]
            toks.append(_Tok(kind, c, glued=glued))
            i += 1
        elif c == "=" and toks and toks[-1].kind in ("var", "member"):
            toks.append(_Tok("eq", c))
            i += 1
        elif c == "+" and (i + 1 >= n or script[i + 1] in " \t") and not glued:
            toks.append(_Tok("plus", c))
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
            toks.append(_Tok("str", "".join(buf), "".join(buf), glued))
        elif c == '"':
            value, i = _double_quoted(script, i + 1)
            kind = "str" if isinstance(value, str) else "expand"
            toks.append(_Tok(kind, str(value), value, glued))
        elif c == "$" and i + 1 < n and script[i + 1] == "(":
            toks.append(_Tok("subexpr", "$(", glued=glued))
            i += 2
        elif c == "$":
            name, j = _var_name(script, i + 1)
            if not name:
                raise ParseError(f"unsupported syntax at '{script[i : i + 10]}'")
            toks.append(_Tok("var", name, VarRef(name), glued))
            i = j
        elif c in "{}@":
            raise ParseError(f"unsupported syntax '{c}' (the simulated host models a subset)")
        elif c == "." and toks and toks[-1].kind in ("var", "rparen", "member") and glued:
            j = i + 1
            while j < n and (script[j].isalnum() or script[j] == "_"):
                j += 1
            if j == i + 1:
                raise ParseError(f"Missing property name after reference operator at '{c}'.")
            toks.append(_Tok("member", script[i + 1 : j], glued=True))
            i = j
        else:
            j = i
            while j < n and script[j] not in _BARE_STOP and script[j] not in _SINGLE_QUOTES | {'"'}:
                if script[j] == "`" and j + 1 < n:
                    j += 1
                j += 1
            word = script[i:j]
            if word.startswith("-") and len(word) > 1 and (word[1].isalpha() or word[1] == "_"):
                toks.append(_Tok("param", word[1:], glued=glued))
            else:
                text = _unescape(word)
                toks.append(_Tok("bare", text, text, glued))
            i = j
    return toks


def _unescape(word: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(word):
        if word[i] == "`" and i + 1 < len(word):
            out.append(_ESCAPES.get(word[i + 1], word[i + 1]))
            i += 2
        else:
            out.append(word[i])
            i += 1
    return "".join(out)


def _literal(tok: _Tok) -> object:
    if tok.kind == "var":
        low = tok.text.lower()
        return {"null": None, "true": True, "false": False}.get(low, VarRef(tok.text))
    if tok.kind == "bare":
        try:
            return int(tok.text)
        except ValueError:
            return tok.text
    return tok.value


class _Parser:
    def __init__(self, toks: list[_Tok]) -> None:
        self.toks = toks
        self.pos = 0

    def peek(self, offset: int = 0) -> _Tok | None:
        p = self.pos + offset
        return self.toks[p] if p < len(self.toks) else None

    def at(self, *kinds: str) -> bool:
        tok = self.peek()
        return tok is not None and tok.kind in kinds

    def take(self) -> _Tok:
        tok = self.toks[self.pos]
        self.pos += 1
        return tok

    def expect(self, kind: str, message: str) -> _Tok:
        if not self.at(kind):
            raise ParseError(message)
        return self.take()

    # -- values ------------------------------------------------------------------------
    def item(self) -> object:
        """One value: literal, variable, string, `( ... )`, `$( ... )`, glued barewords."""
        tok = self.peek()
        if tok is None or tok.kind not in _VALUE_KINDS:
            raise ParseError("Missing expression after ','.")
        self.take()
        value: object
        if tok.kind == "lparen":
            while self.at("sep"):
                self.take()
            pipeline = self.pipeline()
            while self.at("sep"):
                self.take()
            self.expect("rparen", "Missing closing ')' in expression.")
            value = ParenExpr(pipeline)
        elif tok.kind == "subexpr":
            value = SubExpr(self.statements(inside=True))
            self.expect("rparen", "Missing closing ')' in subexpression.")
        else:
            value = _literal(tok)
        while self.at("member"):
            value = Member(value, self.take().text)
        parts = [value if tok.kind != "bare" else tok.text]
        while (nxt := self.peek()) is not None and nxt.glued and nxt.kind in _VALUE_KINDS:
            if nxt.kind in ("lparen", "subexpr"):
                parts.append(self.item())
                continue
            self.take()
            part: object = nxt.text if nxt.kind == "bare" else _literal(nxt)
            while self.at("member"):
                part = Member(part, self.take().text)
            parts.append(part)
        if len(parts) == 1:
            return value
        flat: list[object] = []
        for part in parts:
            flat.extend(part.parts if isinstance(part, Expandable) else [part])
        return Expandable(tuple(flat))

    def value(self) -> object:
        """An item, or a comma array of items."""
        first = self.item()
        if not self.at("comma"):
            return first
        items = [first]
        while self.at("comma"):
            self.take()
            items.append(self.item())
        return items

    def expression(self) -> object:
        """A value, or values joined by ` + `."""
        first = self.value()
        if not self.at("plus"):
            return first
        terms = [first]
        while self.at("plus"):
            self.take()
            terms.append(self.value())
        return Sum(terms)

    # -- commands ----------------------------------------------------------------------
    def command(self) -> Command:
        tok = self.peek()
        if tok is None or tok.kind in ("sep", "pipe", "rparen"):
            raise ParseError("An empty pipe element is not allowed.")
        if tok.kind == "bare":
            cmd = Command(self.take().text)
        elif tok.kind in _VALUE_KINDS:
            cmd = Command(None, [self.expression()])
            if not self.at("sep", "pipe", "rparen") and self.peek() is not None:
                raise ParseError(
                    f"Unexpected token '{self.peek().text}' in expression or statement."
                )  # type: ignore[union-attr]
            return cmd
        else:
            raise ParseError(f"Unexpected token '{tok.text}'.")
        while (tok := self.peek()) is not None and tok.kind not in ("sep", "pipe", "rparen"):
            if tok.kind == "param":
                self.take()
                name, _, inline = tok.text.partition(":")
                if inline:
                    cmd.args.append(Param(name, _literal(_Tok("bare", inline)), has_value=True))
                elif tok.text.endswith(":"):
                    cmd.args.append(Param(name, self.value(), has_value=True))
                else:
                    cmd.args.append(Param(name))
            elif tok.kind in _VALUE_KINDS:
                cmd.args.append(self.value())
            elif tok.kind == "plus":
                self.take()
                cmd.args.append("+")
            else:
                raise ParseError(f"Unexpected token '{tok.text}' in expression or statement.")
        return cmd

    def pipeline(self) -> list[Command]:
        cmds = [self.command()]
        while self.at("pipe"):
            self.take()
            cmds.append(self.command())
        return cmds

    def statements(self, inside: bool = False) -> list[object]:
        out: list[object] = []
        while (tok := self.peek()) is not None:
            if tok.kind == "sep":
                self.take()
                continue
            if tok.kind == "rparen":
                if inside:
                    return out
                raise ParseError("Unexpected token ')' in expression or statement.")
            nxt = self.peek(1)
            if tok.kind == "var" and nxt is not None and nxt.kind == "eq":
                self.take()
                self.take()
                out.append(Assignment(tok.text, self.pipeline()))
            elif tok.kind == "bare" and tok.text.lower() == "exit":
                self.take()
                code: object = 0
                if not self.at("sep", "rparen") and self.peek() is not None:
                    code = self.item()
                out.append(Exit(code))
            else:
                out.append(self.pipeline())
            after = self.peek()
            if (
                after is not None
                and after.kind != "sep"
                and not (inside and after.kind == "rparen")
            ):
                raise ParseError(f"Unexpected token '{after.text}' in expression or statement.")
        if inside:
            raise ParseError("Missing closing ')' in subexpression.")
        return out


def parse(script: str) -> list[object]:
    """Parse a script into statements: `list[Command]` pipelines, `Assignment`s, `Exit`s."""
    return _Parser(_tokenize(script)).statements()
