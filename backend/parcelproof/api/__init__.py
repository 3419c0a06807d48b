"""HTTP API of a courier node (FastAPI): thin routers over the service layer."""
