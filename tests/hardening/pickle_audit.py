"""A static audit of code-executing deserialisation (pickle and its relatives) in product code.

``find_sites(source, path)`` parses one module and returns every place that can unpickle:

- ``pickle`` / ``_pickle`` / ``cloudpickle`` / ``dill``: ``load``, ``loads``, ``Unpickler``;
  ``joblib.load``; ``shelve.open`` (a shelf unpickles its values); ``pandas.read_pickle``;
- ``numpy.load`` when ``allow_pickle`` is passed as anything but the literal ``False`` (or
  ``**kwargs`` could pass it); ``torch.load`` unless ``weights_only=True`` is passed literally;
- the same names reached through aliases (``import pickle as p``, ``from pickle import loads as
  l``, ``import numpy as np``), through ``getattr(pickle, "loads")``, a star import from those
  modules, and ``__import__("pickle")`` / ``importlib.import_module("dill")`` with a literal name.

Any reference counts, called or not (``f = pickle.loads`` is a site), so passing the function
around does not hide it.

A site is **guarded** when the explicit opt-in is checked before it, lexically, in the nearest
enclosing function, the way ``tracking.flavors.load_model`` does it:

- that function has a parameter named ``allow_pickle`` that its body never rebinds, and
- the site sits in the body of an ``if`` whose test requires ``allow_pickle`` to be true
  (``if allow_pickle:``, ``if allow_pickle and ...:``, ``if allow_pickle is True:``), or an
  earlier statement of the same or an enclosing block is ``if not allow_pickle: ... raise``
  (test true whenever the opt-in is off; body ends in ``raise`` and cannot leave early with
  ``return``/``break``/``continue``).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

OPT_IN = "allow_pickle"
#: Modules whose whole purpose is unpickling: importing them dynamically is a site.
PICKLE_MODULES = frozenset(
    {"pickle", "_pickle", "cPickle", "cloudpickle", "dill", "joblib", "shelve"}
)
#: References that unpickle whatever arguments they get.
ALWAYS_UNSAFE = frozenset(
    {
        *(
            f"{module}.{name}"
            for module in ("pickle", "_pickle", "cPickle", "cloudpickle", "dill")
            for name in ("load", "loads", "Unpickler")
        ),
        "joblib.load",
        "shelve.open",
        "shelve.Shelf",
        "shelve.DbfilenameShelf",
        "pandas.read_pickle",
    }
)
#: References that unpickle only with some keyword arguments (checked on the call).
CONDITIONAL = frozenset({"numpy.load", "torch.load"})
DYNAMIC_IMPORTS = frozenset({"__import__", "importlib.import_module", "importlib.__import__"})
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
_ESCAPES = (ast.Return, ast.Break, ast.Continue)


@dataclass(frozen=True, order=True)
class Site:
    path: str
    function: str  # qualified name of the enclosing function ("<module>" at top level)
    target: str  # e.g. "joblib.load", "import pickle"
    line: int
    guarded: bool

    @property
    def key(self) -> tuple[str, str, str]:
        """What identifies a site across edits (line numbers move)."""
        return (self.path, self.function, self.target)


class _Auditor(ast.NodeVisitor):
    def __init__(self, path: str) -> None:
        self.path = path
        self.aliases: dict[str, str] = {}
        self.parents: dict[ast.AST, ast.AST] = {}
        self.sites: list[Site] = []
        self._checked_calls: set[int] = set()

    # -- names ----------------------------------------------------------------------------

    def collect_aliases(self, tree: ast.Module) -> None:
        # Scope-insensitive on purpose: an import anywhere in the module (function-local ones
        # included) makes the name suspicious everywhere, which can only over-report.
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                self.parents[child] = node
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self.aliases[alias.asname] = alias.name
                    else:
                        top = alias.name.split(".")[0]
                        self.aliases.setdefault(top, top)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    if alias.name == "*":
                        if node.module.split(".")[0] in PICKLE_MODULES:
                            self._add(node, f"from {node.module} import *")
                        continue
                    self.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"

    def qualify(self, node: ast.AST) -> str | None:
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id, node.id if node.id == "__import__" else None)
        if isinstance(node, ast.Attribute):
            base = self.qualify(node.value)
            return None if base is None else f"{base}.{node.attr}"
        return None

    # -- sites ----------------------------------------------------------------------------

    def visit_Call(self, node: ast.Call) -> None:
        name = self.qualify(node.func)
        if name in CONDITIONAL:
            self._checked_calls.add(id(node.func))
            if _conditional_unsafe(name, node):
                self._add(node, name)
        elif name in DYNAMIC_IMPORTS and node.args:
            first = node.args[0]
            module = first.value if isinstance(first, ast.Constant) else None
            if isinstance(module, str) and module.split(".")[0] in PICKLE_MODULES:
                self._add(node, f"{name}({module!r})")
        elif _is_getattr(node) and isinstance(node.args[1], ast.Constant):
            base = self.qualify(node.args[0])
            attribute = f"{base}.{node.args[1].value}"
            if base is not None and (attribute in ALWAYS_UNSAFE or attribute in CONDITIONAL):
                self._add(node, f"getattr({attribute})")
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self._reference(node)
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        self._reference(node)

    def _reference(self, node: ast.Attribute | ast.Name) -> None:
        if not isinstance(node.ctx, ast.Load):
            return
        name = self.qualify(node)
        if name in ALWAYS_UNSAFE:
            self._add(node, name)
        elif name in CONDITIONAL and id(node) not in self._checked_calls:
            # Referenced without being called here: it may be called with anything later.
            self._add(node, name)

    def _add(self, node: ast.AST, target: str) -> None:
        function = self._enclosing_function(node)
        self.sites.append(
            Site(
                path=self.path,
                function=self._qualname(function),
                target=target,
                line=getattr(node, "lineno", 0),
                guarded=function is not None and self._guarded(node, function),
            )
        )

    # -- the guard ------------------------------------------------------------------------

    def _enclosing_function(self, node: ast.AST) -> ast.AST | None:
        current = self.parents.get(node)
        while current is not None and not isinstance(current, _FUNCTIONS):
            current = self.parents.get(current)
        return current

    def _qualname(self, function: ast.AST | None) -> str:
        names = []
        current = function
        while current is not None:
            if isinstance(current, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.append(current.name)
            elif isinstance(current, ast.Lambda):
                names.append("<lambda>")
            current = self.parents.get(current)
        return ".".join(reversed(names)) or "<module>"

    def _guarded(self, node: ast.AST, function: ast.AST) -> bool:
        assert isinstance(function, _FUNCTIONS)
        arguments = function.args
        parameters = {
            arg.arg for arg in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs)
        }
        if OPT_IN not in parameters or _rebinds(function, OPT_IN):
            return False
        child: ast.AST = node
        parent = self.parents.get(child)
        while parent is not None and child is not function:
            if (
                isinstance(parent, ast.If)
                and _in_list(child, parent.body)
                and _requires_opt_in(parent.test)
            ):
                return True
            for statements in _statement_lists(parent):
                if _in_list(child, statements):
                    index = next(i for i, s in enumerate(statements) if s is child)
                    if any(_refuses_without_opt_in(s) for s in statements[:index]):
                        return True
            child, parent = parent, self.parents.get(parent)
        return False


def _is_getattr(call: ast.Call) -> bool:
    return isinstance(call.func, ast.Name) and call.func.id == "getattr" and len(call.args) >= 2


def _in_list(node: ast.AST, statements: list[ast.stmt]) -> bool:
    return any(statement is node for statement in statements)


def _statement_lists(node: ast.AST) -> list[list[ast.stmt]]:
    lists = []
    for field in ("body", "orelse", "finalbody"):
        value = getattr(node, field, None)
        if isinstance(value, list) and all(isinstance(s, ast.stmt) for s in value):
            lists.append(value)
    return lists


def _is_opt_in(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and node.id == OPT_IN


def _requires_opt_in(test: ast.expr) -> bool:
    """True only if ``test`` being true implies ``allow_pickle`` is true."""
    if _is_opt_in(test):
        return True
    if isinstance(test, ast.Compare) and len(test.ops) == 1 and _is_opt_in(test.left):
        right = test.comparators[0]
        return (
            isinstance(test.ops[0], ast.Is | ast.Eq)
            and isinstance(right, ast.Constant)
            and right.value is True
        )
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And):
        return any(_requires_opt_in(value) for value in test.values)
    return False


def _true_without_opt_in(test: ast.expr) -> bool:
    """True only if ``test`` is true whenever ``allow_pickle`` is false."""
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        return _is_opt_in(test.operand)
    if isinstance(test, ast.Compare) and len(test.ops) == 1 and _is_opt_in(test.left):
        right = test.comparators[0]
        if not isinstance(right, ast.Constant):
            return False
        op = test.ops[0]
        return (isinstance(op, ast.Is | ast.Eq) and right.value is False) or (
            isinstance(op, ast.IsNot | ast.NotEq) and right.value is True
        )
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.Or):
        return any(_true_without_opt_in(value) for value in test.values)
    return False


def _refuses_without_opt_in(statement: ast.stmt) -> bool:
    """``if not allow_pickle: ... raise``: the body always ends in raise, with no way out."""
    if not isinstance(statement, ast.If) or not _true_without_opt_in(statement.test):
        return False
    if not statement.body or not isinstance(statement.body[-1], ast.Raise):
        return False
    return not any(isinstance(node, _ESCAPES) for s in statement.body for node in _walk_local(s))


def _walk_local(node: ast.AST) -> list[ast.AST]:
    """``ast.walk`` without descending into nested functions or classes."""
    found = [node]
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (*_FUNCTIONS, ast.ClassDef)):
            continue
        found.extend(_walk_local(child))
    return found


def _rebinds(function: ast.AST, name: str) -> bool:
    for node in _walk_local(function):
        if isinstance(node, ast.Name) and node.id == name and not isinstance(node.ctx, ast.Load):
            return True
        if isinstance(node, ast.Global | ast.Nonlocal) and name in node.names:
            return True
    return False


def _conditional_unsafe(name: str, call: ast.Call) -> bool:
    keywords = {keyword.arg: keyword.value for keyword in call.keywords}
    if None in keywords:  # **kwargs could carry anything
        return True
    if name == "numpy.load":
        # numpy refuses pickles unless allow_pickle is true (the default since 1.16.3).
        value = keywords.get("allow_pickle")
        return value is not None and not (isinstance(value, ast.Constant) and value.value is False)
    # torch.load: only weights_only=True restricts the unpickler.
    value = keywords.get("weights_only")
    return not (isinstance(value, ast.Constant) and value.value is True)


def find_sites(source: str, path: str = "<string>") -> list[Site]:
    """Every unpickling site of a module's source, with whether the opt-in guards it."""
    tree = ast.parse(source, filename=path)
    auditor = _Auditor(path)
    auditor.collect_aliases(tree)
    auditor.visit(tree)
    return sorted(auditor.sites)
