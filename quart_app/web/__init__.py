"""The web layer: blueprints, error pages, response headers and the OpenAPI document."""
