"""The model contract is declared, not probed: every backend's CAPABILITIES match its methods, a lazy model knows its
backend's without loading it, stand-ins are read by shape, and no module of the package imports itself in a circle."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from thrifty.llm.capabilities import (
    ALL,
    COUNTS_TOKENS,
    HIDDEN_STATE,
    LABEL_PROBS,
    METHODS,
    PROTOCOLS,
    SELF_TIMED,
    STREAMS,
    TOOLS,
    capabilities,
    count_prompt_tokens,
    supports,
)
from thrifty.llm.factory import BACKENDS, LazyChatModel, SpecLoader, load_model, threaded_loader
from thrifty.llm.fake import FakeChatModel

SRC = Path(__file__).resolve().parents[1] / "src" / "thrifty"
MSGS = [{"role": "user", "content": "two words"}]


def _backend_classes() -> list[type]:
    return [BACKENDS.get(name) for name in BACKENDS.names()]  # imports each module; loads no model


def _params(fn) -> list[str]:
    return [p for p in inspect.signature(fn).parameters if p != "self"]


@pytest.mark.parametrize("cls", _backend_classes(), ids=lambda c: c.__name__)
def test_every_backend_declares_exactly_what_its_methods_offer(cls):
    declared = cls.CAPABILITIES
    assert isinstance(declared, frozenset) and declared <= ALL and LABEL_PROBS in declared
    for method, capability in METHODS.items():
        has = callable(inspect.getattr_static(cls, method, None))
        assert has == (capability in declared), f"{cls.__name__}.{method} vs declared {capability!r}"
        if has:  # the method takes what its protocol promises, in that order
            wanted = _params(getattr(PROTOCOLS[capability], method))
            assert _params(getattr(cls, method))[: len(wanted)] == wanted, f"{cls.__name__}.{method}"
    assert ("on_text" in _params(cls.chat)) == (STREAMS in declared), f"{cls.__name__}.chat and {STREAMS!r}"


@pytest.mark.parametrize(("spec", "backend"), [
    ("fake", "fake"), ("llamacpp:/nowhere/absent.gguf", "llamacpp"), ("/nowhere/absent.gguf", "llamacpp"),
    ("openai:http://127.0.0.1:9/v1#m", "openai"), ("hf:/nowhere/model", "hf"),
])
def test_a_lazy_model_declares_its_backends_capabilities_without_loading(spec, backend):
    for lazy in (LazyChatModel(spec), LazyChatModel(spec, loader=threaded_loader(1)),
                 LazyChatModel(spec, loader=load_model)):
        caps = BACKENDS.get(backend).CAPABILITIES
        assert capabilities(lazy) == caps and not lazy.loaded
        for method, capability in METHODS.items():
            assert hasattr(lazy, method) == (capability in caps), method  # forwarded only when declared
        assert not lazy.loaded  # asking, and taking a method, loads nothing


def test_a_lazy_model_forwards_declared_methods_on_call():
    lazy = LazyChatModel("fake")
    assert lazy.prompt_tokens(MSGS, "Grade:") == FakeChatModel().prompt_tokens(MSGS, "Grade:") > 0 and lazy.loaded
    with pytest.raises(AttributeError):
        lazy.hidden_state(MSGS)


def test_with_another_loader_the_loaded_model_says_what_it_can_do():
    class Tools(FakeChatModel):
        def chat_tools(self, messages, params=None, tools=None, tool_choice=None):
            return self.chat(messages, params)

    lazy = LazyChatModel("anything", loader=lambda spec, **kw: Tools(default="hi"))
    assert not lazy.loaded and supports(lazy, TOOLS) and lazy.loaded
    assert lazy.chat_tools(MSGS, tools=[]).text == "hi"
    assert isinstance(SpecLoader({"n_threads": 2}), SpecLoader) and threaded_loader(2) == SpecLoader({"n_threads": 2})


def test_fake_variants_declare_what_they_add():
    class Timed(FakeChatModel):
        enforces_timeout = True

    class Tools(Timed):
        def chat_tools(self, messages, params=None, tools=None, tool_choice=None):
            return self.chat(messages, params)

    class Untimed(Tools):
        enforces_timeout = False

    assert not supports(FakeChatModel(), SELF_TIMED) and not supports(FakeChatModel(), TOOLS)
    assert supports(Timed(), SELF_TIMED) and not supports(Timed(), TOOLS)
    assert capabilities(Tools()) >= {SELF_TIMED, TOOLS, STREAMS}
    assert TOOLS in capabilities(Untimed()) and SELF_TIMED not in capabilities(Untimed())


def test_a_stand_in_that_declares_nothing_is_read_by_its_shape():
    class StandIn:
        def chat(self, messages, params=None, assistant_prefix="", on_text=None): ...

        def hidden_state(self, messages, assistant_prefix=""):
            return [0.0]

        def prompt_ids(self, messages, assistant_prefix=""):
            return [1, 2, 3]

    class Counts:
        def prompt_tokens(self, messages, assistant_prefix=""):
            return 7

    assert capabilities(StandIn()) == {HIDDEN_STATE, COUNTS_TOKENS}  # never streams: no signature is read
    assert count_prompt_tokens(StandIn(), MSGS) == 3 and count_prompt_tokens(Counts(), MSGS) == 7
    assert count_prompt_tokens(object(), MSGS) == 0
    assert count_prompt_tokens(FakeChatModel(), MSGS) == FakeChatModel().chat(MSGS).tokens_in
    with pytest.raises(ValueError, match="unknown capability"):
        supports(StandIn(), "telepathy")


def test_an_unknown_declared_name_is_refused():
    class Typo:
        CAPABILITIES = frozenset({"stream"})

    with pytest.raises(TypeError, match="stream"):
        capabilities(Typo())


# ---- no import circles ---------------------------------------------------------------------------------------

def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports anywhere in its body (top level, functions, TYPE_CHECKING)."""
    paths = {_module_name(p): p for p in SRC.rglob("*.py")}

    def owner(name: str) -> str | None:  # the module a dotted name lives in
        while name and name not in paths:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for mod, path in paths.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        edges: set[str | None] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                edges.update(owner(a.name) for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                for alias in node.names:
                    edges.add(owner(f"{base}.{alias.name}") if f"{base}.{alias.name}" in paths else owner(base))
        graph[mod] = {e for e in edges if e and e != mod}
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (each holds at least one import circle)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_graph_sees_function_level_and_relative_imports():
    graph = _import_graph()
    assert "thrifty.llm.catalog" in graph["thrifty.llm.factory"]  # imported inside parse_spec
    assert len(graph) == len(list(SRC.rglob("*.py")))


def test_no_module_imports_itself_in_a_circle():
    circles = _circles(_import_graph())
    assert not circles, "import circles: " + "; ".join(" <-> ".join(c) for c in circles)


def test_the_openai_modules_layer_transport_then_stream_then_model():
    graph = _import_graph()
    llm = {m for m in graph if m.startswith("thrifty.llm.")}
    assert graph["thrifty.llm.openai_stream"] & llm == {"thrifty.llm.openai_transport"}
    assert {"thrifty.llm.openai_stream", "thrifty.llm.openai_transport"} <= graph["thrifty.llm.openai_compat"]
    assert not graph["thrifty.llm.openai_transport"] & {"thrifty.llm.openai_stream", "thrifty.llm.openai_compat"}


def test_route_code_reads_no_signatures():
    bad = [str(p.relative_to(SRC)) for p in (SRC / "route").rglob("*.py")
           if "signature(" in p.read_text(encoding="utf-8")]
    assert not bad, f"signature probing in: {bad}"
