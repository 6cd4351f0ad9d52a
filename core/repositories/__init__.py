"""The store's repositories: each ClickHouse table is read and written through the one module of
its domain here (`tests/core/test_table_owners.py` holds every other module to that), which
hands out typed records, never positional rows."""
