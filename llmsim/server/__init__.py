"""The HTTP layer: FastAPI application, lean generation routes, protocol models, errors."""
