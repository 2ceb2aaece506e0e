"""UK legislation as data: the statute index, citation parsing and checking, grounded retrieval."""
