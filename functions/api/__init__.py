"""The serving API: FastAPI app, Mangum handler for Lambda, uvicorn entry point."""
