"""Load and soak: a mixed read/write load at a stated rate against a real `fk up`, with per-endpoint
latency, memory of every platform process, consumer lag and freshness (`python -m soak`)."""
