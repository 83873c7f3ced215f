"""Shared fixtures: Django (tests/environment.py) and the fake upstream servers, each
started once per session on a free loopback port and reset before every test."""

from __future__ import annotations

import pytest

from tests import environment  # noqa: F401  (sets Django up before any test module imports models)


@pytest.fixture(scope="session")
def fake_openai():
    """OpenAI: chat completions, embeddings, models and the Responses API."""
    from tests.fakes.openai_responses import FakeOpenAIResponses

    server = FakeOpenAIResponses().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fake_anthropic():
    from tests.fakes.anthropic import FakeAnthropic

    server = FakeAnthropic().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _reset_fakes(request):
    for name in ("fake_openai", "fake_anthropic", "fake_responses", "fake_ollama", "fake_bedrock", "fake_azure",
                 "fake_openrouter"):
        if name in request.fixturenames:
            request.getfixturevalue(name).reset()
    yield


@pytest.fixture(scope="session")
def fake_ollama():
    from tests.fakes.ollama import FakeOllama

    server = FakeOllama().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fake_bedrock():
    """Verifies SigV4 for tests.fakes.bedrock.ACCESS_KEY / SECRET_KEY in REGION."""
    from tests.fakes.bedrock import FakeBedrock

    server = FakeBedrock().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fake_azure():
    """Expects tests.fakes.azure.API_KEY in `api-key`."""
    from tests.fakes.azure import FakeAzure

    server = FakeAzure().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fake_openrouter():
    from tests.fakes.openrouter import FakeOpenRouter

    server = FakeOpenRouter().start()
    yield server
    server.stop()
