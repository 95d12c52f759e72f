"""The self-service page and the provider webhook receivers (FastAPI, served by uvicorn)."""
