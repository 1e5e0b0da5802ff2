"""What HTTP messages look like to the app: framing, request bodies, JSON errors."""
