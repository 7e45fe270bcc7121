"""Serving: a router or ladder file made live (deploy), `route ask` without a server (runtime), and the
OpenAI-compatible routing server: protocol (pydantic), service (routing with guarded backends, metrics, ledger;
no HTTP), app (`build_app(service)`), guard (keys, rate limits, circuit breakers)."""
