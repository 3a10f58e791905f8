"""Registers MicroturnInteractionForCausalLM under its class name."""

from microturn_sglang.sglang_model import MicroturnInteractionForCausalLM

EntryClass = MicroturnInteractionForCausalLM
