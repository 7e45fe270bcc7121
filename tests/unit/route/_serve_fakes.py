"""Scripted tiers for server tests: "s" predicts great on "easy" questions and bad otherwise; "l" always answers."""

from __future__ import annotations

import json

from thrifty.llm.fake import FakeChatModel
from thrifty.route.serve.deploy import load_deployment
from thrifty.route.serve.service import RoutingService, ServeConfig

GREAT = {"great": 0.8, "ok": 0.15, "bad": 0.05}
BAD = {"great": 0.05, "ok": 0.15, "bad": 0.8}


def small(**kw):
    return FakeChatModel(rules=[("", "small answer")], label_rules=[("easy", GREAT)], label_default=BAD,
                         model_id="s", **kw)


def large(**kw):
    return FakeChatModel(default="large answer", model_id="l", **kw)


def router_file(tmp_path, name="r.json", tau=0.5):
    path = tmp_path / name
    path.write_text(json.dumps({"v": 1, "small": "s", "large": "l", "predictor": {"name": "zero_shot"},
                                "policy": {"tau_good": tau}, "version": "v-test"}))
    return path


def service(tmp_path, s=None, lg=None, ledger=None, **cfg):
    models = {"s": s or small(), "l": lg or large()}
    dep = load_deployment(router_file(tmp_path), load_model=models.__getitem__)
    conf = ServeConfig(routers={"demo": str(tmp_path / "r.json")}, **cfg)
    return RoutingService({"demo": dep}, conf, ledger=ledger), models


def ask(text):
    return [{"role": "user", "content": text}]


class ToolModel(FakeChatModel):
    """A scripted tier that takes OpenAI tools: it calls the first tool offered, with the conversation it got."""

    def chat_tools(self, messages, params=None, tools=None, tool_choice=None):
        done = self.chat([{"role": m["role"], "content": m.get("content") or ""} for m in messages], params)
        name = tools[0]["function"]["name"]
        done.extra["tool_calls"] = [{"id": "call_1", "type": "function",
                                     "function": {"name": name, "arguments": json.dumps({"n": len(messages)})}}]
        self.tool_requests = [*getattr(self, "tool_requests", []), (messages, tools, tool_choice)]
        return done
