"""The conformance suite and test doubles, shipped for backend authors."""
