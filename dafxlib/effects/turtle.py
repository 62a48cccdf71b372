"""A small Turtle (RDF) reader, enough for LV2 bundle descriptions.

Supports ``@prefix``/``@base`` (and SPARQL-style ``PREFIX``/``BASE``), IRIs, prefixed
names, ``a``, string literals (short and long, with language tags or datatypes),
numbers, booleans, blank nodes ``[ ... ]``, collections ``( ... )`` and the ``;`` / ``,``
abbreviations. It returns a flat list of triples; no inference. It is not a validating
parser: it aims to read well-formed files (such as the ones lv2 tools write) correctly.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

from ..errors import EffectError

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"


@dataclass(frozen=True)
class BNode:
    """A blank node, unique within one :class:`Graph`."""

    id: int


@dataclass(frozen=True)
class Literal:
    """A literal: ``value`` is a python str/int/float/bool; ``lang``/``datatype`` as given."""

    value: object
    lang: str | None = None
    datatype: str | None = None


_TOKEN = re.compile(
    r"""
    (?P<ws>\s+|\#[^\n]*)
  | (?P<iri><[^<>"{}|^`\\\s]*>)
  | (?P<long>\"\"\"(?:[^"\\]|\\.|"(?!""))*\"\"\"|'''(?:[^'\\]|\\.|'(?!''))*''')
  | (?P<str>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<lang>@[A-Za-z]+(?:-[A-Za-z0-9]+)*)
  | (?P<dt>\^\^)
  | (?P<num>[+-]?(?:\d*\.\d+(?:[eE][+-]?\d+)?|\d+\.?\d*[eE][+-]?\d+|\d+))
  | (?P<punct>[\[\]();,.])
  | (?P<pname>(?:[A-Za-z][\w.-]*)?:(?:[\w:%-](?:[\w.:%-]*[\w:%-])?)?|_:[\w.-]*[\w-]|[A-Za-z_]\w*)
    """,
    re.VERBOSE,
)

_ESCAPES = {"t": "\t", "b": "\b", "n": "\n", "r": "\r", "f": "\f", '"': '"', "'": "'", "\\": "\\"}


def _unescape(s: str) -> str:
    def rep(m):
        c = m.group(1)
        if c in _ESCAPES:
            return _ESCAPES[c]
        if c[0] in "uU":
            return chr(int(c[1:], 16))
        return c

    return re.sub(r"\\(u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|.)", rep, s)


def _tokenise(text: str, where: str) -> list[tuple[str, str, int]]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            line = text.count("\n", 0, pos) + 1
            raise EffectError(f"{where}:{line}: cannot read Turtle near {text[pos:pos + 30]!r}")
        kind = m.lastgroup
        if kind != "ws":
            out.append((kind, m.group(), pos))
        pos = m.end()
    return out


class Graph:
    """Triples read from one or more Turtle files; simple pattern queries."""

    def __init__(self):
        self.triples: list[tuple[object, str, object]] = []
        self._next_bnode = 0
        self._named_bnodes: dict[tuple[str, str], BNode] = {}
        self._by_subject: dict[object, list[tuple[str, object]]] | None = None

    # ---- reading --------------------------------------------------------------------
    def parse_file(self, path: str | Path) -> "Graph":
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise EffectError(f"cannot read Turtle file {path}: {e}") from e
        return self.parse(text, base=path.resolve().as_uri(), where=str(path))

    def parse(self, text: str, base: str = "", where: str = "<string>") -> "Graph":
        _Parser(self, _tokenise(text, where), base, where, text).run()
        self._by_subject = None
        return self

    def new_bnode(self) -> BNode:
        self._next_bnode += 1
        return BNode(self._next_bnode)

    def named_bnode(self, doc: str, label: str) -> BNode:
        key = (doc, label)
        if key not in self._named_bnodes:
            self._named_bnodes[key] = self.new_bnode()
        return self._named_bnodes[key]

    # ---- queries --------------------------------------------------------------------
    def _index(self) -> dict[object, list[tuple[str, object]]]:
        if self._by_subject is None:
            idx: dict[object, list[tuple[str, object]]] = {}
            for s, p, o in self.triples:
                idx.setdefault(s, []).append((p, o))
            self._by_subject = idx
        return self._by_subject

    def objects(self, subject, predicate: str) -> list:
        return [o for p, o in self._index().get(subject, ()) if p == predicate]

    def value(self, subject, predicate: str, default=None):
        """The first object's python value (literals unwrapped), or ``default``."""
        objs = self.objects(subject, predicate)
        if not objs:
            return default
        o = objs[0]
        return o.value if isinstance(o, Literal) else o

    def subjects(self, predicate: str, obj) -> list:
        return [s for s, p, o in self.triples if p == predicate and o == obj]


class _Parser:
    def __init__(self, graph: Graph, tokens, base: str, where: str, text: str):
        self.g, self.toks, self.i = graph, tokens, 0
        self.base, self.where, self.text = base, where, text
        self.prefixes: dict[str, str] = {}

    # token helpers
    def _err(self, msg: str):
        pos = self.toks[self.i][2] if self.i < len(self.toks) else len(self.text)
        line = self.text.count("\n", 0, pos) + 1
        raise EffectError(f"{self.where}:{line}: Turtle syntax error: {msg}")

    def peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else (None, None, None)

    def take(self):
        tok = self.peek()
        if tok[0] is None:
            self._err("unexpected end of file")
        self.i += 1
        return tok

    def expect(self, value: str):
        kind, val, _ = self.take()
        if val != value:
            self.i -= 1
            self._err(f"expected {value!r}, found {val!r}")

    # grammar
    def run(self):
        while self.peek()[0] is not None:
            kind, val, _ = self.peek()
            if kind == "lang" and val in ("@prefix", "@base"):
                self.take()
                self._directive(val[1:], dot=True)
            elif kind == "pname" and val.upper() in ("PREFIX", "BASE"):
                self.take()
                self._directive(val.lower(), dot=False)
            else:
                self._triples()
                self.expect(".")

    def _directive(self, which: str, dot: bool):
        if which == "prefix":
            kind, name, _ = self.take()
            if kind != "pname" or not name.endswith(":"):
                self._err(f"bad prefix name {name!r}")
            kind, iri, _ = self.take()
            if kind != "iri":
                self._err("a prefix needs an <IRI>")
            self.prefixes[name[:-1]] = self._resolve(iri[1:-1])
        else:
            kind, iri, _ = self.take()
            if kind != "iri":
                self._err("@base needs an <IRI>")
            self.base = self._resolve(iri[1:-1])
        if dot:
            self.expect(".")

    def _resolve(self, iri: str) -> str:
        return urljoin(self.base, _unescape(iri)) if self.base else _unescape(iri)

    def _triples(self):
        kind, val, _ = self.peek()
        if val == "[":
            subj = self._blank()
            if self.peek()[1] == ".":
                return
        else:
            subj = self._term(subject=True)
        self._predicate_objects(subj)

    def _predicate_objects(self, subj):
        while True:
            pred = self._verb()
            while True:
                self.g.triples.append((subj, pred, self._object()))
                if self.peek()[1] == ",":
                    self.take()
                    continue
                break
            if self.peek()[1] == ";":
                while self.peek()[1] == ";":
                    self.take()
                if self.peek()[1] in (".", "]", None):
                    return
                continue
            return

    def _verb(self) -> str:
        kind, val, _ = self.peek()
        if kind == "pname" and val == "a":
            self.take()
            return RDF + "type"
        term = self._term(subject=True)
        if not isinstance(term, str):
            self._err("a predicate must be an IRI")
        return term

    def _object(self):
        kind, val, _ = self.peek()
        if val == "[":
            return self._blank()
        if val == "(":
            return self._collection()
        if kind in ("str", "long"):
            return self._literal()
        if kind == "num":
            self.take()
            if re.fullmatch(r"[+-]?\d+", val):
                return Literal(int(val), datatype="http://www.w3.org/2001/XMLSchema#integer")
            return Literal(float(val), datatype="http://www.w3.org/2001/XMLSchema#decimal")
        if kind == "pname" and val in ("true", "false"):
            self.take()
            return Literal(val == "true", datatype="http://www.w3.org/2001/XMLSchema#boolean")
        return self._term(subject=False)

    def _literal(self) -> Literal:
        kind, val, _ = self.take()
        body = val[3:-3] if kind == "long" else val[1:-1]
        text = _unescape(body)
        nkind, nval, _ = self.peek()
        if nkind == "lang":
            self.take()
            return Literal(text, lang=nval[1:])
        if nkind == "dt":
            self.take()
            dt = self._term(subject=True)
            return Literal(text, datatype=dt if isinstance(dt, str) else None)
        return Literal(text)

    def _term(self, subject: bool):
        kind, val, _ = self.take()
        if kind == "iri":
            return self._resolve(val[1:-1])
        if kind == "pname":
            if val.startswith("_:"):
                return self.g.named_bnode(self.where, val[2:])
            if ":" not in val:
                self.i -= 1
                self._err(f"unexpected word {val!r}")
            prefix, local = val.split(":", 1)
            if prefix not in self.prefixes:
                self.i -= 1
                self._err(f"undeclared prefix {prefix!r}")
            return self.prefixes[prefix] + re.sub(r"\\(.)", r"\1", local)
        self.i -= 1
        self._err(f"expected an IRI or prefixed name, found {val!r}")

    def _blank(self) -> BNode:
        self.expect("[")
        node = self.g.new_bnode()
        if self.peek()[1] != "]":
            self._predicate_objects(node)
        self.expect("]")
        return node

    def _collection(self):
        self.expect("(")
        items = []
        while self.peek()[1] != ")":
            items.append(self._object())
        self.take()
        head = RDF + "nil"
        for item in reversed(items):
            node = self.g.new_bnode()
            self.g.triples.append((node, RDF + "first", item))
            self.g.triples.append((node, RDF + "rest", head))
            head = node
        return head


def read_turtle(*paths: str | Path) -> Graph:
    """Parse one or more Turtle files into one :class:`Graph`."""
    g = Graph()
    for p in paths:
        g.parse_file(p)
    return g
