"""The routing server on a real port, driven by the stock `openai` client, with a bundled model as the small
tier (it predicts its own grade and answers) and a scripted large tier."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
from _bundled import open_bundled

from thrifty.llm.fake import FakeChatModel
from thrifty.route.serve.app import build_app
from thrifty.route.serve.deploy import load_deployment
from thrifty.route.serve.guard import ApiKeys, hash_key
from thrifty.route.serve.service import RoutingService, ServeConfig

SMALL = "smollm2-135m-instruct"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def server(tmp_path):
    uvicorn = pytest.importorskip("uvicorn")
    small = open_bundled(SMALL)
    router = tmp_path / "router.json"
    router.write_text(json.dumps({"v": 1, "small": SMALL, "large": "large", "predictor": {"name": "zero_shot"},
                                  "policy": {"tau_good": 0.5}, "version": "it"}))
    models = {SMALL: small, "large": FakeChatModel(default="large answer", model_id="large")}
    dep = load_deployment(router, load_model=models.__getitem__)
    service = RoutingService({"demo": dep}, ServeConfig(routers={"demo": str(router)}, timeout_s=120))
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(build_app(service, ApiKeys({"it": hash_key("k-it")})), host="127.0.0.1",
                                        port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(200):
        if srv.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/v1"
    srv.should_exit = True
    thread.join(10)
    service.close()


def test_openai_client_gets_routed_answers_with_metadata(server):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=server, api_key="k-it", max_retries=0)
    assert [m.id for m in client.models.list().data] == ["thrifty/demo"]
    msgs = [{"role": "user", "content": "What is 2 + 2?"}]
    low = client.chat.completions.create(model="thrifty/demo-0", messages=msgs, max_tokens=16)
    meta = low.model_extra["thrifty"]
    assert meta["action"] == "answer" and meta["model"] == SMALL and low.choices[0].message.content
    assert abs(sum(meta["probs"].values()) - 1) < 1e-6 and low.usage.completion_tokens > 0
    high = client.chat.completions.create(model="thrifty/demo-1", messages=msgs, max_tokens=16)
    assert high.model_extra["thrifty"]["action"] == "defer" and high.choices[0].message.content == "large answer"
    chunks = list(client.chat.completions.create(model="thrifty/demo-0", messages=msgs, max_tokens=16, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == low.choices[0].message.content
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server, api_key="wrong", max_retries=0).models.list()
