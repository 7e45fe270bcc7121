"""`thrifty route serve` (the OpenAI-compatible routing server), `thrifty route audit` (judge live answers from its
ledger) and `thrifty route keys new` (an API key)."""

from __future__ import annotations

import argparse
import ipaddress
from pathlib import Path

from thrifty.cli._common import add_config_args, add_verb, resolve_config


def register_verbs(verbs) -> None:
    """Add ``serve`` and ``keys new`` to the route room's verbs."""
    s = add_verb(verbs, "serve", "serve router and ladder files behind an OpenAI-compatible API (127.0.0.1 by "
                 "default)", _serve)
    add_config_args(s)
    s.add_argument("--router", action="append", metavar="[NAME=]FILE", help="a router or ladder file, served as "
                   "thrifty/NAME (default NAME: the file's stem, or its folder for router.json/ladder.json); "
                   "repeatable")
    s.add_argument("--host", help="address to bind (default 127.0.0.1)")
    s.add_argument("--port", type=int, help="port (default 6060)")
    s.add_argument("--api-keys", help="API key file (name:sha256 lines, from `thrifty route keys new`)")
    s.add_argument("--no-auth", action="store_const", const=True, help="serve without API keys (loopback only)")
    s.add_argument("--ledger", help="run store for the decision ledger")
    s.add_argument("--fallback", choices=["lower", "error"], help="when the top tier fails: serve a lower tier's "
                   "answer marked fallback (default) or answer 503")
    s.add_argument("--sticky", action="store_const", const=True, help="keep a conversation (x-thrifty-conversation "
                   "header) at the highest tier it reached")
    s.add_argument("--threads", type=int, help="llama.cpp threads per model (default 1)")

    a = add_verb(verbs, "audit", "judge a sample of the small model's live answers from a decision ledger, as "
                 "train-split grades a report card can be rebuilt from", _audit)
    add_config_args(a)
    a.add_argument("--ledger", help="run store written by `route serve --ledger`")
    a.add_argument("--model", help="the small tier's model id (as the ledger names it)")
    a.add_argument("--judge", help="LLM judge (default rubric_isolated)")
    a.add_argument("--judge-model", help="model spec of the judge")
    a.add_argument("--n", type=int, help="answers to judge (default 50)")
    a.add_argument("--store", help="where the grades go (default: the ledger)")

    keys = verbs.add_parser("keys", help="manage the server's API keys", description="manage the server's API keys")
    key_verbs = keys.add_subparsers(dest="keys_verb", metavar="<new>", parser_class=type(keys))
    key_verbs.required = True
    k = key_verbs.add_parser("new", help="make an API key: print it once, append its hash to the key file")
    k.set_defaults(func=_key_new)
    k.add_argument("--file", required=True, help="the key file (created with mode 600)")
    k.add_argument("--name", required=True, help="a name for the key (who uses it; shown in the ledger)")


def _router_arg(text: str) -> tuple[str, str]:
    if "=" in text:
        name, _, path = text.partition("=")
        return name, path
    p = Path(text)
    return (p.parent.name if p.stem in ("router", "ladder") and p.parent.name else p.stem), text


def _serve(args: argparse.Namespace) -> int:
    import os

    from thrifty.core.errors import ConfigError
    from thrifty.route.serve.service import ServeConfig

    if args.router:
        args.overrides = [*args.overrides, *(f"routers.{n}={p}" for n, p in map(_router_arg, args.router))]
    cfg = resolve_config(ServeConfig, args, {"host": "host", "port": "port", "api_keys": "api_keys",
                                             "no_auth": "no_auth", "ledger": "ledger", "fallback": "fallback",
                                             "sticky": "sticky", "threads": "n_threads"})
    from thrifty.route.serve.guard import ApiKeys

    keys = ApiKeys.load(cfg.api_keys or None, os.environ.get(cfg.api_keys_env))
    if not cfg.no_auth and not len(keys):
        raise ConfigError(f"no API keys: give --api-keys FILE (`thrifty route keys new`) or set {cfg.api_keys_env}; "
                          "or --no-auth on a loopback address")
    if cfg.no_auth and not _loopback(cfg.host):
        raise ConfigError(f"--no-auth is refused on {cfg.host}: without keys, bind a loopback address only")
    return _run(cfg, keys)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _run(cfg, keys) -> int:
    import uvicorn

    from thrifty.llm.factory import load_model
    from thrifty.route.serve.app import build_app
    from thrifty.route.serve.deploy import load_deployment
    from thrifty.route.serve.ledger import Ledger
    from thrifty.route.serve.service import RoutingService

    def loader(spec: str):  # HTTP backends time out on their own (the service's timeout), the guard retries
        extra = {"timeout_s": cfg.timeout_s, "max_retries": 0} if spec.startswith("openai:") else {}
        return load_model(spec, llamacpp={"n_threads": cfg.n_threads}, **extra)

    deployments = {name: load_deployment(path, loader, cfg.history_tokens) for name, path in cfg.routers.items()}
    for dep in deployments.values():  # load every tier now, so the first request is not the slow one
        for model in dep.models:
            getattr(model, "load", lambda: None)()
    service = RoutingService(deployments, cfg, Ledger(cfg.ledger) if cfg.ledger else None)
    app = build_app(service, keys if len(keys) else None)
    names = ", ".join(f"{n} ({' → '.join(d.tiers)})" for n, d in deployments.items())
    metrics = "/metrics" if cfg.public_metrics or not len(keys) else "/metrics (with a key)"
    print(f"serving {names} at http://{cfg.host}:{cfg.port}/v1 "
          f"({'no auth' if not len(keys) else f'{len(keys)} API key(s)'}; metrics at {metrics})", flush=True)
    try:
        uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning")
    finally:
        service.close()
    return 0


def _audit(args: argparse.Namespace) -> int:
    from thrifty.route.fit.audit import AuditConfig, audit

    cfg = resolve_config(AuditConfig, args, {"ledger": "ledger", "model": "model", "judge": "judge",
                                             "judge_model": "judge_model", "n": "n", "store": "store"})
    res = audit(cfg)
    mix = ", ".join(f"{k} {v}" for k, v in sorted(res["labels"].items()))
    print(f"judged {res['audited']} of {res['pool']} live answers by {cfg.model} ({res['new']} new): {mix}")
    print(f"rebuild its card from them: thrifty route report-card build --store {res['store']} --model {cfg.model} "
          f"--judge {res['judge']} --out CARD.json")
    return 0


def _key_new(args: argparse.Namespace) -> int:
    import os

    from thrifty.core.errors import ConfigError
    from thrifty.route.serve.guard import ApiKeys, hash_key, new_key

    path = Path(args.file)
    if path.exists() and args.name in ApiKeys.load(path)._by_name:
        raise ConfigError(f"{path}: a key named {args.name!r} exists already")
    if ":" in args.name or not args.name.strip():
        raise ConfigError("--name must be non-empty and free of ':'")
    key = new_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as f:
        f.write(f"{args.name}:{hash_key(key)}\n")
    print(key)
    print(f"(shown once; its hash was added to {path} as {args.name!r})")
    return 0
