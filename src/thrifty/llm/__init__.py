"""llm: the ChatModel protocol, its backends (llamacpp, openai_compat, hf, fake) and the bundled-model catalog."""
