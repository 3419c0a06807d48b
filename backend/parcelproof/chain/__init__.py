"""Ethereum adapters: contract compilation, devnets and the ParcelLedger client."""
