"""Runtime stats: EWMA, the circuit breaker's transitions (injected clock), affinity."""

from __future__ import annotations

import pytest

from routing.stats import CLOSED, HALF_OPEN, OPEN, RuntimeStats, counts_as_failure

from .build import Clock

T = ("cloud", "big")


def fail(stats: RuntimeStats, target=T, status: int | None = 503) -> None:
    stats.end(stats.begin(target), ok=False, status=status)


def succeed(stats: RuntimeStats, target=T, ttft: float | None = 0.1) -> None:
    stats.end(stats.begin(target), ok=True, ttft=ttft, status=200)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def stats(clock):
    return RuntimeStats(clock=clock)


class TestCircuitBreaker:
    def test_five_consecutive_failures_open_it(self, stats):
        for _ in range(4):
            fail(stats)
        assert stats.state(T) == CLOSED and stats.available(T)
        fail(stats)
        assert stats.state(T) == OPEN and not stats.available(T)

    def test_a_success_resets_the_consecutive_count(self, stats):
        for _ in range(4):
            fail(stats)
        succeed(stats)
        for _ in range(4):
            fail(stats)
        assert stats.state(T) == CLOSED

    def test_an_error_rate_over_half_of_the_last_twenty_opens_it(self, stats):
        # Alternate so there are never five failures in a row: 6 of 11 failed.
        for i in range(11):
            fail(stats) if i % 2 == 0 else succeed(stats)
        assert stats.state(T) == OPEN

    def test_the_error_rate_needs_ten_attempts(self, stats):
        for i in range(9):
            fail(stats) if i % 2 == 0 else succeed(stats)  # 5 of 9: not enough attempts yet
        assert stats.state(T) == CLOSED

    def test_open_becomes_half_open_after_the_cooldown_and_lets_one_probe_through(self, stats, clock):
        for _ in range(5):
            fail(stats)
        clock.advance(29.9)
        assert stats.state(T) == OPEN and not stats.available(T)
        clock.advance(0.2)
        assert stats.state(T) == HALF_OPEN and stats.available(T)
        probe = stats.begin(T)
        assert probe.probe and not stats.available(T)  # exactly one request through
        second = stats.begin(T)  # a last-resort attempt anyway: not a probe
        assert not second.probe
        stats.end(second, ok=None)
        stats.end(probe, ok=True, ttft=0.2, status=200)
        assert stats.state(T) == CLOSED and stats.available(T)

    def test_a_failed_probe_reopens_with_a_doubled_cooldown_up_to_five_minutes(self, stats, clock):
        for _ in range(5):
            fail(stats)
        expected = 30.0
        clock.advance(expected)
        for _ in range(6):
            assert stats.state(T) == HALF_OPEN
            fail(stats)  # the probe fails
            assert stats.state(T) == OPEN
            expected = min(expected * 2, 300.0)
            assert stats.get(T).cooldown == expected
            clock.advance(expected - 0.1)
            assert stats.state(T) == OPEN
            clock.advance(0.1)
        assert stats.get(T).cooldown == 300.0

    def test_success_after_reopening_closes_and_resets_the_cooldown(self, stats, clock):
        for _ in range(5):
            fail(stats)
        clock.advance(30)
        fail(stats)
        clock.advance(60)
        succeed(stats)
        assert stats.state(T) == CLOSED and stats.get(T).cooldown == 30.0

    def test_a_probe_whose_client_went_away_frees_the_slot(self, stats, clock):
        for _ in range(5):
            fail(stats)
        clock.advance(30)
        stats.end(stats.begin(T), ok=None)
        assert stats.state(T) == HALF_OPEN and stats.available(T)

    def test_request_errors_are_not_target_failures(self, stats):
        for _ in range(10):
            fail(stats, status=400)
        assert stats.state(T) == CLOSED and stats.get(T).error_rate == 0.0
        assert counts_as_failure(None) and counts_as_failure(429) and counts_as_failure(502)
        assert counts_as_failure(401) and not counts_as_failure(413) and not counts_as_failure(422)

    def test_the_cooldown_is_configurable(self, clock):
        stats = RuntimeStats(clock=clock, cooldown=5.0, failure_threshold=2)
        fail(stats), fail(stats)
        clock.advance(5)
        assert stats.state(T) == HALF_OPEN


class TestMeasurements:
    def test_ttft_is_an_ewma_with_alpha_a_fifth(self, stats):
        succeed(stats, ttft=1.0)
        assert stats.ttft(T) == 1.0
        succeed(stats, ttft=2.0)
        assert stats.ttft(T) == pytest.approx(1.2)

    def test_in_flight_counts_begun_requests(self, stats):
        a, b = stats.begin(T), stats.begin(T)
        assert stats.in_flight(T) == 2
        stats.end(a, ok=True)
        stats.end(b, ok=None)
        assert stats.in_flight(T) == 0

    def test_provider_error_rate_is_passive_health_across_models(self, stats):
        fail(stats, ("cloud", "a")), succeed(stats, ("cloud", "b")), succeed(stats, ("cloud", "b"))
        fail(stats, ("cloud", "a"))
        assert stats.provider_error_rate("cloud") == 0.5
        assert stats.provider_error_rate("local") is None
        summary = stats.summary()
        assert summary["cloud"]["error_rate"] == 0.5 and summary["cloud"]["circuit"] == CLOSED

    def test_the_target_table_is_bounded(self, clock):
        stats = RuntimeStats(clock=clock, max_targets=3)
        for i in range(10):
            succeed(stats, ("p", f"m{i}"))
        assert len(stats._targets) == 3


class TestAffinity:
    def test_a_session_sticks_until_the_ttl(self, stats, clock):
        stats.stick("s1", T)
        clock.advance(1799)
        assert stats.sticky("s1") == T
        stats.stick("s1", T)  # each success refreshes it
        clock.advance(1799)
        assert stats.sticky("s1") == T
        clock.advance(2)
        assert stats.sticky("s1") is None

    def test_the_map_is_a_bounded_lru(self, clock):
        stats = RuntimeStats(clock=clock, affinity_max=3)
        for s in ("a", "b", "c"):
            stats.stick(s, T)
        stats.sticky("a")  # used: now the most recent
        stats.stick("d", T)
        assert stats.sticky("b") is None
        assert stats.sticky("a") == T and stats.sticky("c") == T and stats.sticky("d") == T

    def test_no_session_no_affinity(self, stats):
        stats.stick("", T)
        assert stats.sticky("") is None


class TestClusterSharing:
    def test_opening_and_closing_are_announced_to_the_listener(self, stats, clock):
        seen = []
        stats.listener = lambda target, state, until: seen.append((target, state, until is not None))
        for _ in range(5):
            fail(stats)
        clock.advance(31)
        succeed(stats)  # the half-open probe succeeds
        assert seen == [(T, OPEN, True), (T, CLOSED, False)]

    def test_a_circuit_open_elsewhere_opens_here_and_closes_when_it_is_gone(self, stats):
        stats.apply_remote({T: 1_000.0 + 30}, wall_now=1_000.0)
        assert stats.state(T) == OPEN and not stats.available(T)
        stats.apply_remote({}, wall_now=1_001.0)
        assert stats.state(T) == CLOSED and stats.available(T)

    def test_an_expired_remote_entry_opens_nothing(self, stats):
        stats.apply_remote({T: 999.0}, wall_now=1_000.0)
        assert stats.state(T) == CLOSED

    def test_a_circuit_opened_here_is_not_closed_by_a_remote_view_without_it(self, stats):
        for _ in range(5):
            fail(stats)
        stats.apply_remote({}, wall_now=1_000.0)
        assert stats.state(T) == OPEN
