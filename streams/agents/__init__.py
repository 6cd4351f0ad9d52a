"""Faust agents and services, one module per stream."""
