"""The generator: definitions/ and services/*/service.toml -> generated code and docs.

Run ``python -m codegen`` to write, ``python -m codegen --check`` to fail when anything
generated is stale (CI runs it).
"""
