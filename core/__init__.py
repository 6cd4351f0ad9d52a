"""Shared plumbing for streams/ and api/: settings, logging, metrics, store, auth, broker."""
