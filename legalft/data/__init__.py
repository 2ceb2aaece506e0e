"""Datasets: read any supported file, sanitize to chat records, inspect, split, convert legislation."""
