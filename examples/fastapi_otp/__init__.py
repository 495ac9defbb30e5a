"""A FastAPI service sending one-time codes through VairoSMS: see `app`."""
