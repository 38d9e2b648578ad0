"""Background work owned by the application's lifespan."""
