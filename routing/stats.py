"""What this process has learned from real traffic, per target (provider, model):
time to first token, error rate, requests in flight, and a circuit breaker; plus
the session-affinity map. In-process and lock-free: the hot path runs on one event
loop, so every method is a few dict operations with no await in between. (The
admin's route tester reads it from a worker thread; reads tolerate that.)

Circuit breaker, per target:
    closed    → open       after `failure_threshold` consecutive failures, or more than
                           `error_rate_threshold` failures among the last `window` attempts
                           (once at least `min_window` are recorded)
    open      → half_open  once the cool-down has passed (checked lazily, no timers)
    half_open              lets exactly one request through (the probe)
    half_open → closed     the probe succeeds (cool-down back to its base)
    half_open → open       the probe fails; the cool-down doubles, up to `max_cooldown`
A success on an open circuit (a last-resort attempt, see strategies) closes it too.

What counts as a failure (`counts_as_failure`): no status (connect error, timeout,
stall, dropped stream), 5xx, 408, 429, and 401/403/404 (the target is misconfigured:
better elsewhere). Other 4xx (400, 413, 422 …) are the request's fault, the same on
every target: they count as a sign of life, not as a failure.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

Target = tuple[str, str]  # (provider name, model)

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
FAILURE_STATUSES = frozenset((401, 402, 403, 404, 408, 429))  # 402: out of credits


def counts_as_failure(status: int | None) -> bool:
    return status is None or status >= 500 or status in FAILURE_STATUSES


def target_of(candidate) -> Target:
    """A (provider, model) tuple, or anything with .provider.name and .model (routing.router.Candidate)."""
    if isinstance(candidate, tuple):
        return candidate
    return (candidate.provider.name, candidate.model)


@dataclass(slots=True)
class TargetStats:
    ttft: float | None = None  # EWMA, seconds
    error_rate: float = 0.0  # EWMA of failures (1) and successes (0)
    in_flight: int = 0
    consecutive_failures: int = 0
    recent: deque = field(default_factory=deque)  # last `window` outcomes, True = failure
    state: str = CLOSED
    opened_at: float = 0.0
    cooldown: float = 0.0
    probing: bool = False  # the half-open probe is in flight
    remote: bool = False  # opened by another process (cluster sync), not by our own traffic
    successes: int = 0
    failures: int = 0


@dataclass(slots=True, frozen=True)
class Token:
    target: Target
    started: float
    probe: bool


class RuntimeStats:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic, alpha: float = 0.2,
                 failure_threshold: int = 5, window: int = 20, min_window: int = 10,
                 error_rate_threshold: float = 0.5, cooldown: float = 30.0, max_cooldown: float = 300.0,
                 affinity_ttl: float = 1800.0, affinity_max: int = 10_000, max_targets: int = 4096) -> None:
        self.clock = clock
        self.alpha = alpha
        self.failure_threshold = failure_threshold
        self.window = window
        self.min_window = min_window
        self.error_rate_threshold = error_rate_threshold
        self.base_cooldown = cooldown
        self.max_cooldown = max_cooldown
        self.affinity_ttl = affinity_ttl
        self.affinity_max = affinity_max
        self.max_targets = max_targets
        self._targets: OrderedDict[Target, TargetStats] = OrderedDict()
        # Called as listener(target, state, open_until_wall_clock) when a circuit opens or
        # closes here, so other processes can learn it (gateway.cluster).
        self.listener: Callable[[Target, str, float | None], None] | None = None
        self._affinity: OrderedDict[str, tuple[Target, float]] = OrderedDict()

    # ------------------------------------------------------------------ per target

    def get(self, target) -> TargetStats | None:
        return self._targets.get(target_of(target))

    def _stats(self, target: Target) -> TargetStats:
        stats = self._targets.get(target)
        if stats is None:
            # Clients can name arbitrary provider/model pairs: keep the table bounded.
            if len(self._targets) >= self.max_targets:
                for old, s in list(self._targets.items()):
                    if s.in_flight == 0:
                        del self._targets[old]
                        break
            stats = self._targets[target] = TargetStats(recent=deque(maxlen=self.window),
                                                        cooldown=self.base_cooldown)
        return stats

    def state(self, target, now: float | None = None) -> str:
        """closed / open / half_open as of `now` (an open circuit past its cool-down reads half_open)."""
        stats = self._targets.get(target_of(target))
        if stats is None:
            return CLOSED
        if stats.state == OPEN:
            now = self.clock() if now is None else now
            if now - stats.opened_at >= stats.cooldown:
                return HALF_OPEN
        return stats.state

    def available(self, target, now: float | None = None) -> bool:
        """May a request be sent now without expecting failure? Closed: yes. Open: no.
        Half-open: yes for one request until its result is in."""
        stats = self._targets.get(target_of(target))
        if stats is None or stats.state == CLOSED:
            return True
        state = self.state(target, now)
        return state == HALF_OPEN and not stats.probing

    def begin(self, target) -> Token:
        key = target_of(target)
        stats = self._stats(key)
        now = self.clock()
        probe = False
        if stats.state != CLOSED and not stats.probing and self.state(key, now) == HALF_OPEN:
            stats.state, stats.probing, probe = HALF_OPEN, True, True
        stats.in_flight += 1
        return Token(key, now, probe)

    def end(self, token: Token, ok: bool | None, ttft: float | None = None,
            status: int | None = None) -> None:
        """Once per begin(), always (call it in `finally`). ok=None: the outcome says nothing
        about the target (the client went away): only the in-flight count is released.
        ok=False with a status that is the request's fault (400 …) counts as a sign of life."""
        stats = self._targets.get(token.target)
        if stats is None:  # evicted meanwhile (only possible with in_flight == 0: not this one)
            return
        stats.in_flight = max(0, stats.in_flight - 1)
        if token.probe:
            stats.probing = False
        if ok is None:
            return
        failed = not ok and counts_as_failure(status)
        stats.error_rate += self.alpha * ((1.0 if failed else 0.0) - stats.error_rate)
        stats.recent.append(failed)
        if failed:
            stats.failures += 1
            stats.consecutive_failures += 1
            self._after_failure(stats, token)
        else:
            stats.successes += 1
            stats.consecutive_failures = 0
            if ok and ttft is not None:
                stats.ttft = ttft if stats.ttft is None else stats.ttft + self.alpha * (ttft - stats.ttft)
            if stats.state != CLOSED:
                stats.state, stats.cooldown, stats.remote = CLOSED, self.base_cooldown, False
                stats.recent.clear()
                if self.listener is not None:
                    self.listener(token.target, CLOSED, None)

    def _after_failure(self, stats: TargetStats, token: Token) -> None:
        now = self.clock()
        if stats.state == HALF_OPEN and token.probe:
            stats.state, stats.opened_at = OPEN, now
            stats.cooldown = min(stats.cooldown * 2, self.max_cooldown)
        elif stats.state == CLOSED:
            recent = stats.recent
            too_many = (len(recent) >= self.min_window
                        and sum(recent) / len(recent) > self.error_rate_threshold)
            if stats.consecutive_failures >= self.failure_threshold or too_many:
                stats.state, stats.opened_at, stats.cooldown = OPEN, now, self.base_cooldown
            else:
                return
        else:
            return  # already open (a last-resort attempt failed): stays open, cool-down unchanged
        stats.remote = False
        if self.listener is not None:
            self.listener(token.target, OPEN, time.time() + stats.cooldown)

    def apply_remote(self, open_until: dict[Target, float], wall_now: float | None = None) -> None:
        """Circuits other processes hold open (target → wall-clock end of cool-down): open
        them here too; close those we only had open because of them once they are gone."""
        wall_now = time.time() if wall_now is None else wall_now
        now = self.clock()
        for target, until in open_until.items():
            stats = self._stats(target)
            if stats.state == CLOSED and until > wall_now:
                stats.state, stats.opened_at, stats.cooldown, stats.remote = OPEN, now, until - wall_now, True
        for target, stats in self._targets.items():
            if stats.remote and stats.state != CLOSED and target not in open_until:
                stats.state, stats.cooldown, stats.remote = CLOSED, self.base_cooldown, False
                stats.recent.clear()
                stats.consecutive_failures = 0

    def ttft(self, target) -> float | None:
        stats = self._targets.get(target_of(target))
        return None if stats is None else stats.ttft

    def in_flight(self, target) -> int:
        stats = self._targets.get(target_of(target))
        return 0 if stats is None else stats.in_flight

    # ------------------------------------------------------------------ passive health

    def provider_error_rate(self, name: str) -> float | None:
        """Failures among the recent attempts of every target of this provider; None without data."""
        attempts = failures = 0
        for (provider, _), stats in self._targets.items():
            if provider == name:
                attempts += len(stats.recent)
                failures += sum(stats.recent)
        return failures / attempts if attempts else None

    def summary(self, now: float | None = None) -> dict[str, dict]:
        """Per provider, for /health/ready and the admin: worst circuit state, error rate,
        best TTFT, in flight."""
        now = self.clock() if now is None else now
        rank = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}
        out: dict[str, dict] = {}
        for (provider, model), stats in self._targets.items():
            entry = out.setdefault(provider, {"circuit": CLOSED, "open_models": [], "in_flight": 0,
                                              "ttft_ms": None})
            state = self.state((provider, model), now)
            if rank[state] > rank[entry["circuit"]]:
                entry["circuit"] = state
            if state != CLOSED:
                entry["open_models"].append(model)
            entry["in_flight"] += stats.in_flight
            if stats.ttft is not None:
                ms = round(stats.ttft * 1000, 1)
                entry["ttft_ms"] = ms if entry["ttft_ms"] is None else min(entry["ttft_ms"], ms)
        for provider, entry in out.items():
            entry["error_rate"] = self.provider_error_rate(provider)
        return out

    # ------------------------------------------------------------------ session affinity

    def stick(self, session_key: str, target) -> None:
        """Remember where this session's last successful request went (refreshes the TTL)."""
        if not session_key:
            return
        affinity = self._affinity
        affinity[session_key] = (target_of(target), self.clock() + self.affinity_ttl)
        affinity.move_to_end(session_key)
        while len(affinity) > self.affinity_max:
            affinity.popitem(last=False)

    def sticky(self, session_key: str, now: float | None = None) -> Target | None:
        if not session_key:
            return None
        entry = self._affinity.get(session_key)
        if entry is None:
            return None
        now = self.clock() if now is None else now
        target, expires = entry
        try:
            if expires <= now:
                del self._affinity[session_key]
                return None
            self._affinity.move_to_end(session_key)
        except KeyError:  # removed by the event loop while the route tester's thread looked
            return None
        return target

    def reset(self) -> None:
        self._targets.clear()
        self._affinity.clear()
