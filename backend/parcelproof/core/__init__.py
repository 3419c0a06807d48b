"""Consensus-critical pure core: Merkle log, commitments, envelopes, signatures, bundles.

Nothing here performs I/O or imports web3, SQLAlchemy or FastAPI; a test enforces it.
Pay extra attention to every change in this package.
"""
