"""``python -m quart_app.serve``: the production entry point (``supervisor.main``)."""

import sys

from quart_app.serve.supervisor import main

if __name__ == "__main__":
    sys.exit(main())
