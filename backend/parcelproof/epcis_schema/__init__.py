"""The vendored GS1 EPCIS 2.0 JSON schema (data only; see README.md for its source)."""
