"""Security: credentials, who may call a view, CSRF, sign-in and rate limits."""
