"""ParcelProof: verifiable parcel tracking anchored on an Ethereum ledger."""

__version__ = "0.1.0"
