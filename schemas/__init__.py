"""Wire and API models shared by every package; pure pydantic, no I/O."""
