"""The bounded, expiring cache the key look-ups use."""

from __future__ import annotations

from gateway.cache import ExpiringCache


def test_the_cache_evicts_the_least_recently_used_and_forgets_after_its_time() -> None:
    now = [0.0]
    cache: ExpiringCache[str, int] = ExpiringCache(2, 5.0, lambda: now[0])
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recently used
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
    now[0] = 4.9
    assert cache.get("c") == 3
    now[0] = 5.0
    assert cache.get("c") is None and len(cache) == 1


def test_a_cache_with_no_time_to_live_keeps_nothing() -> None:
    cache: ExpiringCache[str, int] = ExpiringCache(2, 0, lambda: 0.0)
    cache.put("a", 1)
    assert cache.get("a") is None and len(cache) == 0
