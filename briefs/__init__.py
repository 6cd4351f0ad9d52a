"""The AI brief generator: tools over our store, the model loop, grounding, cache and storage."""
