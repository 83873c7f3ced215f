"""Every codec satisfies the Codec Protocol exactly: same methods, same parameters
(names, kinds, defaults). mypy checks the same structurally in `make lint`
(providers/codecs/contract.py); this catches an extra option a codec grows alone."""

import inspect

import pytest

from providers.codecs import MODULES, get_codec
from providers.codecs.base import Codec

METHODS = [name for name, value in vars(Codec).items()
           if inspect.isfunction(value) and not name.startswith("_")]


def _parameters(function) -> list[tuple]:
    """After the first (`self`, or `codec` where a format's module defines the method)."""
    return [(p.name, p.kind, p.default) for p in list(inspect.signature(function).parameters.values())[1:]]


def test_the_contract_has_every_method():
    assert set(METHODS) == {"decode_request", "encode_request", "decode_response", "encode_response",
                            "usage_from_response", "stream_decoder", "stream_encoder", "encode_error",
                            "decode_error"}


@pytest.mark.parametrize("fmt", sorted(MODULES))
def test_codec_matches_the_protocol_exactly(fmt):
    codec = get_codec(fmt)
    assert codec.name == fmt
    assert isinstance(codec.stream_media_type, str) and codec.stream_media_type
    for name in METHODS:
        assert _parameters(getattr(type(codec), name)) == _parameters(getattr(Codec, name)), (fmt, name)
