"""Batch ETL of creator-performance CSV files into the same store the stream fills."""
