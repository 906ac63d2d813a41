"""The keeper API's token bucket per client (relayer.pullpath.ratelimit), on a test clock."""

from __future__ import annotations

import pytest

from relayer.pullpath.ratelimit import ClientBuckets, client_key


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_the_rate_and_others_untouched() -> None:
    clock = Clock()
    buckets = ClientBuckets(2.0, 3, clock=clock)
    assert [buckets.take("10.0.0.1") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = buckets.take("10.0.0.1")
    assert wait == pytest.approx(0.5)  # one token at 2 per second
    assert ClientBuckets.retry_after(wait) == "1"
    assert buckets.take("10.0.0.2") == 0.0  # another client has its own bucket
    clock.now += 0.5
    assert buckets.take("10.0.0.1") == 0.0
    assert buckets.take("10.0.0.1") > 0
    clock.now += 60
    assert [buckets.take("10.0.0.1") for _ in range(3)] == [0.0, 0.0, 0.0]  # refilled to the burst, no more
    assert buckets.take("10.0.0.1") > 0


def test_refused_requests_take_no_token() -> None:
    clock = Clock()
    buckets = ClientBuckets(1.0, 1, clock=clock)
    assert buckets.take("10.0.0.1") == 0.0
    for _ in range(100):
        assert buckets.take("10.0.0.1") > 0
    clock.now += 1.0
    assert buckets.take("10.0.0.1") == 0.0  # hammering did not push the next token further away


def test_ipv6_clients_are_their_slash_64() -> None:
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::7") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:10.0.0.1") == "10.0.0.1"
    assert client_key("fe80::1%eth0") == "fe80::/64"
    assert client_key(None) == ""
    buckets = ClientBuckets(1.0, 1, clock=Clock())
    assert buckets.take("2001:db8::1") == 0.0
    assert buckets.take("2001:db8::2") > 0  # a new address of the same /64 is the same client


def test_buckets_kept_are_bounded() -> None:
    clock = Clock()
    buckets = ClientBuckets(1.0, 1, max_clients=100, clock=clock)
    for i in range(1_000):
        buckets.take(f"10.0.{i // 256}.{i % 256}")
    assert len(buckets._buckets) == 100


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (1, 0)])
def test_bad_settings_are_refused(rate: float, burst: int) -> None:
    with pytest.raises(ValueError):
        ClientBuckets(rate, burst)
