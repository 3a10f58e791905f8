"""microturn sglang-patch: SGLang plugin and CPU reference engine for microturn.v1.StreamingSession."""
