"""Calls paced to what the endpoint allows: AWS's published rates to start, faster while nothing is refused, and
just under the rate where refusals began once one is.

AWS throttles per account and region with one token bucket per API category ("Request throttling for the Amazon
ECS API"; task-definition reads: a burst of 50, then 20 per second). A :class:`Pacer` keeps a client-side bucket
per category, shared by every worker, so parallel workers wait their turn instead of being refused. Quotas can be
raised and a sandbox may run faster than AWS, so each bucket's refill rate adapts (:class:`AdaptiveRate`):

- it starts at AWS's published rate, or at ``rate_scale`` times it (a hint, such as a sandbox's time scale);
- while callers wait for its tokens and nothing is refused, it grows e-fold every 0.1 s (at most fourfold per
  call): from 20 calls a second to 200 in 0.23 s, which costs a 2,000-call sync about 0.14 s against going at
  200 from the first call. Short runs are where this matters; a probe that overshoots costs a few refusals;
- a refusal bounds the endpoint's refill rate by what it admitted before: from a moment its bucket was empty
  (an earlier refusal) or full (before the first one) no stretch can have admitted more than the tokens it had
  plus the refill over its length. The rate drops to 97% of that bound and the bucket gives up its burst
  (AWS's is empty), once per throttle: refusals of calls already on their way are the same throttle;
- then it creeps up again, slowly at first and faster the longer nothing is refused, so a raised quota, a
  quieter neighbour or a bound that came out low is found, at the cost of a refused call now and then.

Refusals that fit no token bucket (a fault injector's, AWS failing for its own reasons) do not slow it down, nor
does a refusal before a burst's worth was admitted (a neighbour emptied the bucket). Throttles must reach the
pacer to teach it anything, and botocore would retry them itself (sleeping up to seconds per worker, unseen):
:func:`paced_aws` gives the :class:`~opskit.aws.Aws` paced calls go through, whose botocore makes one attempt;
anything else botocore would retry (5xx answers, lost connections) goes again through the caller's own ``Aws``,
with its retries. A ThrottlingException never reaches the caller: after ``patience`` seconds of refusals the
caller gets an :class:`~opskit.errors.AwsError` that says what to do.

>>> pacer = Pacer()
>>> pacer.call(TASK_DEFINITION_READ, ecs.list_task_definitions, maxResults=100)   # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from opskit.aws import THROTTLE_CODES, Aws
from opskit.errors import AwsError

T = TypeVar("T")

TASK_DEFINITION_READ = "task-definition-read"
SERVICE_READ = "service-read"
SERVICE_DEPLOYMENT_READ = "service-deployment-read"
TASK_DEFINITION_MODIFY = "task-definition-modify"  # RegisterTaskDefinition, DeregisterTaskDefinition
TASK_DEFINITION_DELETE = "task-definition-deletion"  # DeleteTaskDefinitions
SERVICE_MODIFY = "service-modify"  # CreateService, UpdateService, DeleteService
TAG_READ = "tag-read"  # ListTagsForResource

GROWTH = 10.0  # per second, while callers wait and nothing was refused (e^10 a second, at most fourfold a call)
CREEP = 0.01  # per second right after a throttle, doubling every second callers wait and no refusal comes ...
SPAN = 20  # ... or every SPAN calls where a second holds fewer: a refused call per cycle, at any rate
ESCAPE = 1.1  # this far past the last bound, and a burst's worth beyond it, without a refusal: it was low
MARGIN = 0.97  # how far under the bound a refusal revealed the rate settles
CONSISTENT = 1.1  # admitted calls proving a rate this far above what the refusals allow: no bucket's refusals
MIN_SPAN = 0.05  # seconds: the shortest stretch of calls a bound is drawn from (shorter ones are clock jitter)
GRACE = 0.25  # seconds after a cut: refusals of calls sent by then show the old rate, not the new one
FAULTY = 0.05  # refused this often since the last cut, under the rate it revealed: faults, not a bucket
FLOOR = 0.25  # never under this share of AWS's published rate: quotas are raised, not lowered, only shared
REMEMBERED = 8192  # calls remembered per bucket, for the bounds
HISTORY = 2048  # of which at most this many are looked back over, per refusal


@dataclass(frozen=True)
class Rate:
    """A token bucket: ``burst`` calls at once, then ``per_second``."""

    burst: float
    per_second: float

    def scaled(self, factor: float) -> Rate:
        return Rate(self.burst, self.per_second * factor)


# The published ECS rates, per account and region (notes: aws-facts).
AWS_RATES: dict[str, Rate] = {
    TASK_DEFINITION_READ: Rate(50, 20),
    SERVICE_READ: Rate(100, 20),
    SERVICE_DEPLOYMENT_READ: Rate(50, 20),
    TASK_DEFINITION_MODIFY: Rate(20, 1),
    TASK_DEFINITION_DELETE: Rate(5, 1),
    SERVICE_MODIFY: Rate(50, 5),
    TAG_READ: Rate(50, 20),
}

# The category each ECS action draws from, as "Request throttling for the Amazon ECS API" groups them.
ECS_CATEGORIES: dict[str, str] = {
    **dict.fromkeys(
        ("DescribeTaskDefinition", "ListTaskDefinitions", "ListTaskDefinitionFamilies"), TASK_DEFINITION_READ
    ),
    **dict.fromkeys(("RegisterTaskDefinition", "DeregisterTaskDefinition"), TASK_DEFINITION_MODIFY),
    "DeleteTaskDefinitions": TASK_DEFINITION_DELETE,
    **dict.fromkeys(("CreateService", "UpdateService", "DeleteService"), SERVICE_MODIFY),
    **dict.fromkeys(("DescribeServices", "ListServices"), SERVICE_READ),
    **dict.fromkeys(
        ("ListServiceDeployments", "DescribeServiceDeployments", "DescribeServiceRevisions"), SERVICE_DEPLOYMENT_READ
    ),
    "ListTagsForResource": TAG_READ,
}


@dataclass
class _Sent:
    at: float  # when the call went (its token was due)
    refused: bool = False


class AdaptiveRate:
    """The refill rate of one client-side bucket, learnt from what the endpoint admits and refuses.

    Pure bookkeeping, with no clock of its own: the bucket tells it when each call goes (:meth:`sent`, which
    grows the rate while callers wait) and which ones were refused (:meth:`refused`, which cuts it). ``burst`` is
    the endpoint bucket's size as AWS publishes it; ``known`` says ``start`` is the endpoint's rate as its caller
    knows it (a sandbox's time scale), so it is only crept past, not probed at once. Without ``adaptive`` the
    rate stays ``start``.
    """

    def __init__(
        self,
        start: float,
        burst: float,
        *,
        floor: float | None = None,
        known: bool = False,
        adaptive: bool = True,
    ) -> None:
        if not (start > 0 and burst >= 1):
            raise ValueError(f"a rate needs a positive start and a burst of at least 1, not {start}, {burst}")
        self.start = start
        self.burst = burst
        self.adaptive = adaptive
        self.per_second = start
        self.floor = min(start, FLOOR * start if floor is None else floor)
        self.ceiling: float | None = start if known else None  # the endpoint's rate, as far as it is known
        self.cuts = 0  # throttles that cut the rate
        self.refusals = 0
        self.faults = 0  # refusals no rate explains, left without a cut
        self.trims = 0  # throttles taken for faults: the rate trimmed, not cut to a bound
        self._sent: deque[_Sent] = deque()
        self._first = 0  # the ticket of _sent[0]
        self._last_at: float | None = None
        self._creeping = 0.0  # seconds callers waited since the last cut
        self._excess = 0.0  # calls sent beyond the ceiling since then
        self._cut_ticket = 0  # tickets from here on went after the last cut
        self._epoch = [0, 0]  # calls sent since the last cut (after its grace), and how many were refused
        self._epoch_over = False  # whether the rate went past the ceiling meanwhile
        self._trimmed: list[tuple[float, float]] = []  # (rate, low bound) at each trim since the last cut
        self._grace_until = -math.inf

    # -- calls going ------------------------------------------------------------------------------------------------
    def sent(self, at: float, *, waited: bool) -> int:
        """A call goes at ``at`` (seconds, any clock); ``waited`` when its caller had to wait for the token (the
        callers want more than the rate). Returns its ticket, for :meth:`refused`."""
        ticket = self._first + len(self._sent)
        self._sent.append(_Sent(at))
        if len(self._sent) > REMEMBERED:
            self._sent.popleft()
            self._first += 1
        last, self._last_at = self._last_at, at if self._last_at is None else max(self._last_at, at)
        if at >= self._grace_until:
            self._epoch[0] += 1
            self._epoch_over |= self.ceiling is None or self.per_second > self.ceiling
        if self.adaptive and waited and last is not None and not self._trimmed:  # no growth while trimming
            # Only time spent waiting counts, at most two tokens' worth per call: an idle spell is no evidence.
            dt = min(max(0.0, at - last), 2.0 / self.per_second)
            self._creeping += dt
            if self.ceiling is not None:
                self._excess += max(0.0, self.per_second - self.ceiling) * dt
            growth = min(self._growth() * dt, math.log(4))  # at a few calls a second: at most fourfold a call
            self.per_second = min(self.per_second * math.exp(growth), self.start * 1e4)
        return ticket

    def _growth(self) -> float:
        if self.ceiling is not None and self.per_second > ESCAPE * self.ceiling and self._excess > self.burst:
            self.ceiling = None  # past the bound by more than a burst's worth, and nothing refused: it was low
        if self.ceiling is None:
            return GROWTH
        unit = max(1.0, SPAN / self.per_second)  # a throttle costs a token: at a few a second, creep per token
        return min(GROWTH, CREEP / unit * math.pow(2.0, min(self._creeping / unit, 20.0)))

    # -- a call refused ---------------------------------------------------------------------------------------------
    def refused(self, ticket: int, now: float) -> bool:
        """The call of ``ticket`` was throttled (``now``: the time it was told, on the same clock); True when that
        cut the rate (a new throttle), False when it belonged to one already reacted to."""
        self.refusals += 1
        entry = self._entry(ticket)
        if entry is None:
            return False  # too old to place
        entry.refused = True
        if not self.adaptive:
            return False
        if ticket < self._cut_ticket or entry.at < self._grace_until:
            return False  # on its way before the last cut, or right after it: the same throttle, told again
        self._epoch[1] += 1
        low, high = self.bounds(ticket)
        estimate = self._estimate(low, high, self.per_second)
        if estimate is None:
            self.faults += 1
            return False
        self._cut_ticket = self._first + len(self._sent)
        if not (self._clean() or self._steady(estimate, low) or estimate < self.per_second / 2):
            # Refused again since the last cut, and under the rate it revealed: a bucket would have stopped refusing
            # there, faults do not (or that cut was not deep enough). Trim the rate a little, once a second at most,
            # and hold it there. A clean stretch, the bound staying put while the rate falls, or a bound under half
            # the rate (faults refusing a third of the calls do not make one) make a cut again.
            self.trims += 1
            self._trimmed.append((self.per_second, low))
            self.per_second = max(self.floor, MARGIN * self.per_second)
            self._grace_until = max(now, self._last_at or now) + 1.0
            return True
        self.cuts += 1
        self._trimmed.clear()
        self.ceiling = estimate
        self.per_second = max(self.floor, MARGIN * estimate)
        self._grace_until = max(now, self._last_at or now) + GRACE
        self._creeping = self._excess = 0.0
        self._epoch = [0, 0]
        self._epoch_over = False
        return True

    def _steady(self, estimate: float, low: float) -> bool:
        """Have the trims since the last cut slowed the rate (by 8% or more) while what the admitted calls prove
        (``low``) held or grew? A bucket admits its rate however slowly it is asked (a neighbour took part of it,
        or the cut was not deep enough); faults refuse a share of whatever is asked."""
        if len(self._trimmed) < 2:
            return False
        rate = self._trimmed[0][0]
        held = low > 0 and low >= 0.95 * max(before for _, before in self._trimmed)  # trims take 3% each
        return self.per_second <= 0.92 * rate and held and estimate < 0.9 * self.per_second

    def _clean(self) -> bool:
        """Does this throttle end a clean stretch: the rate went past the last cut's bound, or 30 calls (5 s worth,
        where that is fewer) went since that cut with fewer than 1 in 20 refused? (Before any cut, the rate is past
        every bound.)"""
        sent, refused = self._epoch
        return self._epoch_over or (sent >= min(30, 5 * self.per_second) and refused < FAULTY * sent)

    def _entry(self, ticket: int) -> _Sent | None:
        index = ticket - self._first
        return self._sent[index] if 0 <= index < len(self._sent) else None

    @staticmethod
    def _estimate(low: float, high: float, rate: float) -> float | None:
        """The endpoint's refill rate from a refusal's bounds (:meth:`bounds`) while going at ``rate``: under what
        the throttle proves, at least what the admitted calls prove, and never above ``rate`` itself (a refusal
        never speeds anything up). None when the refusal proves nothing (before a burst's worth was admitted: a
        neighbour emptied the bucket) or fits no token bucket (admitted calls prove more than the refusals allow:
        faults)."""
        if high <= 0 or low > CONSISTENT * high:
            return None
        return min(rate, max(low, high if high < rate else rate))

    def bounds(self, ticket: int) -> tuple[float, float]:
        """(low, high) with low < R < high for the endpoint's refill rate R, if ``ticket`` was refused because the
        endpoint's bucket had run dry.

        Over any stretch of length L a bucket refilling at R admits at most the tokens it had at the start plus
        R*L. From a refusal it had less than one: R > (admitted - 1) / L, for every such stretch (low). From a
        refusal to this one (empty both times) R*L < admitted + 1, unless the bucket filled up on the way, which it
        cannot have if it would not have at that very rate: each such stretch bounds R by itself, the least is
        high. Before any refusal the bucket may have been full (``burst`` tokens) anywhere: R < (admitted + 1 -
        burst) / L for the stretch since then, and no stretch gives more than R + 1/L, so the largest is high.
        """
        end = self._entry(ticket)
        if end is None:
            return 0.0, math.inf
        low, full, empty = 0.0, 0.0, math.inf
        admitted, refusals = 0, 0
        since: list[tuple[float, int]] = []  # (length, admitted) of each stretch from an admitted call to the end
        for index in range(ticket - 1, max(self._first, ticket - HISTORY) - 1, -1):
            entry = self._sent[index - self._first]
            length = end.at - entry.at
            if length < MIN_SPAN:
                admitted += not entry.refused
                continue
            if entry.refused:
                low = max(low, (admitted - 1) / length)
                bound = (admitted + 1) / length
                if all(count - bound * span < self.burst - 1 for span, count in since):  # never full on the way
                    empty = min(empty, bound)
                elif refusals == 0:
                    full = max(full, bound)
                refusals += 1
                if refusals >= 16:
                    break
                continue
            admitted += 1
            since.append((length, admitted))
            if refusals == 0:
                full = max(full, (admitted + 1 - self.burst) / length)
        return low, empty if empty < math.inf else full


class TokenBucket:
    """Blocks each caller until its call fits the rate; callers are served in the order they asked.

    A caller that finds no token reserves the next one (the count goes negative) and sleeps until it is due, so
    N threads waiting cost no polling and the k-th call goes exactly when the bucket would have refilled it.
    ``headroom`` (< 1) runs slightly under the rate so clock jitter never makes AWS's bucket refuse us, and
    ``reserve`` leaves that share of the burst unused, so calls delayed on the way and delivered together (a busy
    network, a loaded machine) still find tokens in AWS's bucket. With ``adaptive`` the refill rate is learnt
    (:class:`AdaptiveRate`), from ``rate`` times ``headroom`` to start: report refusals with :meth:`refused`.
    """

    def __init__(
        self,
        rate: Rate,
        *,
        headroom: float = 0.98,
        reserve: float = 0.1,
        adaptive: bool = False,
        known: bool = False,
        floor: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate.burst < 1 or rate.per_second <= 0:
            raise ValueError(f"a rate needs a burst of at least 1 and a positive refill, not {rate}")
        self.rate = rate
        self.probe = AdaptiveRate(rate.per_second * headroom, rate.burst, floor=floor, known=known, adaptive=adaptive)
        self._capacity = max(1.0, math.floor(rate.burst * (1 - reserve)))
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self._capacity
        self._stamp = clock()

    @property
    def per_second(self) -> float:
        """The refill rate now (learnt, when adaptive)."""
        return self.probe.per_second

    def reserve(self) -> tuple[int, float]:
        """Take the next token without waiting for it: its ticket and when it is due (on the bucket's clock)."""
        with self._lock:
            now = self._refilled()
            spare = self._tokens
            self._tokens -= 1
            due = now + (-self._tokens / self.probe.per_second if self._tokens < 0 else 0.0)
            return self.probe.sent(due, waited=spare < 1.5), due

    def take(self) -> int:
        """Take one token, sleeping until it is due; returns its ticket, for :meth:`refused`."""
        ticket, due = self.reserve()
        wait = due - self._clock()
        if wait > 0:
            self._sleep(wait)
        return ticket

    def acquire(self) -> float:
        """Take one token, sleeping until it is there; returns the seconds waited."""
        _, due = self.reserve()
        wait = max(0.0, due - self._clock())
        if wait > 0:
            self._sleep(wait)
        return wait

    def refused(self, ticket: int) -> None:
        """The call of ``ticket`` was throttled: AWS's bucket is empty, so ours gives up its burst."""
        with self._lock:
            self._refilled()
            if self.probe.refused(ticket, self._stamp):
                self._tokens = min(self._tokens, 0.0)

    def ready_in(self, count: int = 1) -> float:
        """Seconds until ``count`` more calls could go without waiting (nothing is taken): for choosing which
        bucket to use next, and for estimates of the time left."""
        with self._lock:
            refill = self.probe.per_second
            tokens = min(self._capacity, self._tokens + (self._clock() - self._stamp) * refill)
        return max(0.0, (count - tokens) / refill)

    def hold(self, seconds: float) -> None:
        """Nobody gets a token for ``seconds``: AWS's bucket is empty (we were throttled), let it refill."""
        with self._lock:
            self._refilled()
            self._tokens = min(self._tokens, -seconds * self.probe.per_second)

    def _refilled(self) -> float:
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self.probe.per_second)
        self._stamp = now
        return now


class Pacer:
    """Paced, throttle-proof AWS calls per API category.

    ``rates`` overrides :data:`AWS_RATES` per category. ``rate_scale`` multiplies every refill rate: a sandbox
    running ``time_scale`` times faster than AWS refills its buckets that much faster too. At 1 (AWS's rates, the
    default) the buckets probe for more at once; another scale is taken as what the endpoint allows and only
    crept past. Without ``adaptive`` the rates stay as given. A call of no category is not paced until it is
    throttled; from then on its operation has a bucket of its own (ECR throttles per action). ``calls`` counts
    the calls made per operation and ``throttled`` the throttles that reached the pacer.
    """

    def __init__(
        self,
        rates: Mapping[str, Rate] | None = None,
        *,
        rate_scale: float = 1.0,
        headroom: float = 0.98,
        patience: float = 900.0,
        adaptive: bool = True,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not (rate_scale > 0 and math.isfinite(rate_scale)):
            raise ValueError("rate_scale must be a positive number")
        self.patience = patience
        self.adaptive = adaptive
        self.headroom = headroom
        self.calls: Counter[str] = Counter()
        self.throttled: Counter[str] = Counter()
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        merged = {**AWS_RATES, **(rates or {})}
        self.buckets: dict[str, TokenBucket] = {
            name: self._bucket(
                rate.scaled(rate_scale),
                floor=FLOOR * headroom * rate.per_second * min(1.0, rate_scale),
                known=rate_scale != 1 or name in (rates or {}),  # told what the endpoint allows
            )
            for name, rate in merged.items()
        }
        self._recent: dict[str, deque[float]] = {}  # when unpaced operations were last called

    def call(self, category: str | None, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``function(*args, **kwargs)`` when the category's bucket allows, retried while AWS throttles it."""
        name = _operation(function, args)
        started = self._clock()
        attempt = 0
        while True:
            bucket = self.buckets.get(category or "") or self.buckets.get(f"operation:{name}")
            ticket = bucket.take() if bucket is not None else self._unpaced(name)
            with self._lock:
                self.calls[name] += 1
            try:
                with _paced():
                    return function(*args, **kwargs)
            except AwsError as exc:
                if exc.code not in THROTTLE_CODES:
                    raise
                with self._lock:
                    self.throttled[name] += 1
                if self._clock() - started > self.patience:
                    raise AwsError(
                        f"AWS kept throttling {name} for {self.patience:.0f} s: another tool is using this account's "
                        "ECS quota; run again later"
                    ) from exc
                attempt += 1
                if bucket is None:
                    self._learn(name)
                else:
                    bucket.refused(ticket)
                    if attempt >= 3:  # refused again and again: the endpoint is busy with more than our calls
                        bucket.hold(min(20.0, 0.05 * 2 ** (attempt - 3)))

    def _bucket(self, rate: Rate, *, floor: float, known: bool) -> TokenBucket:
        return TokenBucket(
            rate,
            headroom=self.headroom,
            adaptive=self.adaptive,
            known=known,
            floor=floor,
            clock=self._clock,
            sleep=self._sleep,
        )

    def _unpaced(self, name: str) -> int:
        """Note when an operation with no bucket went, so a first throttle has a rate to start its bucket from."""
        with self._lock:
            self._recent.setdefault(name, deque(maxlen=32)).append(self._clock())
        return -1

    def _learn(self, name: str) -> None:
        """A bucket for an operation throttled for the first time, at just under the rate it was going at."""
        with self._lock:
            key = f"operation:{name}"
            if key in self.buckets:
                return
            times = self._recent.get(name) or deque([self._clock()])
            span = times[-1] - times[0]
            rate = MARGIN * (len(times) - 1) / span if span > 0 else 1.0
            per_second = max(1.0, rate)  # a second's worth as the burst, as ECR publishes its rates
            learnt = self._bucket(Rate(per_second, per_second / self.headroom), floor=1.0, known=True)
            learnt.hold(0.0)  # the endpoint's bucket is empty right now: no burst to start with
            self.buckets[key] = learnt


def _operation(function: Callable[..., Any], args: tuple[Any, ...]) -> str:
    """The API operation a call makes, as AWS names it (ListTaskDefinitions), for counting."""
    name = getattr(function, "__name__", "call")
    if name == "call_json" and len(args) >= 2:
        return str(args[1])
    return "".join(part.capitalize() for part in name.split("_"))


# -- throttles to the pacer ----------------------------------------------------------------------------------------
_pacing = threading.local()


@contextlib.contextmanager
def _paced() -> Iterator[None]:
    """Inside, the calls of this thread are a pacer's: their throttles are its to retry."""
    _pacing.depth = getattr(_pacing, "depth", 0) + 1
    try:
        yield
    finally:
        _pacing.depth -= 1


def _again_in_full(exc: AwsError) -> bool:
    """Would botocore have retried this single attempt's failure (a pacer's throttles aside)?"""
    if exc.code in THROTTLE_CODES:
        return getattr(_pacing, "depth", 0) == 0
    return exc.transient or exc.code is None  # 5xx answers, or none at all (a lost connection)


@dataclass
class _OneAttempt(Aws):
    """An :class:`Aws` whose botocore makes one attempt per call, so each throttle reaches the pacer at once; a
    failure botocore would have retried goes again through ``full``, the caller's own ``Aws``, with its retries
    (and its messages: "after N attempts" counts those)."""

    full: Aws | None = field(default=None, repr=False)
    _wrapped: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    def client(self, service: str) -> Any:
        if service not in self._wrapped:
            full = self.full
            assert full is not None
            self._wrapped[service] = _Retried(super().client(service), lambda: full.client(service))
        return self._wrapped[service]

    def call_json(self, service: str, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        assert self.full is not None
        try:
            return super().call_json(service, operation, body)
        except AwsError as exc:
            if not _again_in_full(exc):
                raise
        return self.full.call_json(service, operation, body)


class _Retried:
    """A client whose API calls make one attempt, then, where botocore would retry, go through the client ``full``
    makes (made the first time it is needed)."""

    def __init__(self, once: Any, full: Callable[[], Any]) -> None:
        self._once, self._full = once, full  # Aws.client makes each client once, then hands it out
        self._operations = frozenset(once.meta.method_to_api_mapping)

    def __getattr__(self, name: str) -> Any:
        if name in ("get_paginator", "get_waiter"):  # many calls each, not the pacer's: botocore retries them
            return getattr(self._full(), name)
        attribute = getattr(self._once, name)
        if name not in self._operations:
            return attribute

        @functools.wraps(attribute)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return attribute(*args, **kwargs)
            except AwsError as exc:
                if not _again_in_full(exc):
                    raise
            return getattr(self._full(), name)(*args, **kwargs)

        return call


def paced_aws(aws: Aws) -> Aws:
    """``aws`` as a pacer's calls should use it: throttles come straight back (botocore would otherwise retry them
    itself, sleeping up to seconds per worker, and the pacer would never learn it went too fast); everything else
    is retried as ``aws`` is configured to (``AWS_MAX_ATTEMPTS``). Calls outside a pacer are retried in full."""
    if isinstance(aws, _OneAttempt) or aws.max_attempts == 1:
        return aws
    given = {f.name: getattr(aws, f.name) for f in dataclasses.fields(Aws) if f.init}
    once = _OneAttempt(**{**given, "max_attempts": 1}, full=aws)
    once.retry_mode = "standard"  # adaptive mode's own client-side limiter would pace against the pacer
    return once


@dataclass
class _PacedAws(_OneAttempt):
    """An :class:`Aws` whose every call waits its turn in ``pacer`` (ECS actions in their category's bucket, the
    rest unpaced until throttled) and whose throttles reach it."""

    pacer: Pacer | None = field(default=None, repr=False)
    _paced: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    def client(self, service: str) -> Any:
        if service not in self._paced:
            assert self.pacer is not None
            self._paced[service] = _PacedClient(super().client(service), self.pacer, service)
        return self._paced[service]

    def call_json(self, service: str, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        assert self.pacer is not None
        category = ECS_CATEGORIES.get(operation) if service == "ecs" else None
        return self.pacer.call(category, super().call_json, service, operation, body)


class _PacedClient:
    def __init__(self, client: Any, pacer: Pacer, service: str) -> None:
        self._client, self._pacer, self._service = client, pacer, service
        self._operations = client._operations  # _Retried's: the client's API methods

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if name not in self._operations:
            return attribute
        operation = "".join(part.capitalize() for part in name.split("_"))
        category = ECS_CATEGORIES.get(operation) if self._service == "ecs" else None

        @functools.wraps(attribute)
        def call(*args: Any, **kwargs: Any) -> Any:
            return self._pacer.call(category, attribute, *args, **kwargs)

        return call


def paced_by(pacer: Pacer, aws: Aws) -> Aws:
    """``aws`` with every call it makes paced by ``pacer``, so several workers (the services of a release set, each
    following its own rollout) share one budget per category instead of each spending AWS's whole."""
    given = {f.name: getattr(aws, f.name) for f in dataclasses.fields(Aws) if f.init}
    full = aws.full if isinstance(aws, _OneAttempt) and aws.full is not None else aws
    paced = _PacedAws(**{**given, "max_attempts": 1}, full=full, pacer=pacer)
    paced.retry_mode = "standard"
    return paced


__all__ = [
    "AWS_RATES",
    "ECS_CATEGORIES",
    "SERVICE_DEPLOYMENT_READ",
    "SERVICE_MODIFY",
    "SERVICE_READ",
    "TAG_READ",
    "TASK_DEFINITION_DELETE",
    "TASK_DEFINITION_MODIFY",
    "TASK_DEFINITION_READ",
    "THROTTLE_CODES",
    "AdaptiveRate",
    "Pacer",
    "Rate",
    "TokenBucket",
    "paced_aws",
    "paced_by",
]
