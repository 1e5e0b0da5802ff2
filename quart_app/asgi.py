"""The ASGI entry point: ``hypercorn -c hypercorn.toml quart_app.asgi:app``."""

from quart_app import create_app

app = create_app()
