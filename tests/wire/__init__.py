"""Local servers speaking the model providers' real wire formats, for tests and benchmarks.

- ``openai_server``: ``OpenAIWire`` (``/v1/chat/completions``, ``/v1/embeddings``);
- ``anthropic_server``: ``AnthropicWire`` (``/v1/messages``);
- ``control``: the behaviours a test sets (ok, slow, 429 + retry-after, 5xx, 4xx,
  malformed JSON, unexpected JSON), the request log and per-mode counts;
- ``serve``: ``run_server(app)``, uvicorn on 127.0.0.1 in a background thread;
- ``fixtures``: the pytest fixtures ``openai_server`` and ``anthropic_server``.
"""
