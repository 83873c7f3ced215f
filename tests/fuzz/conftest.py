from tests.e2e.conftest import gateway  # noqa: F401  (the real server, for the over-the-wire fuzz)
