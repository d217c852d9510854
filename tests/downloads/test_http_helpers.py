"""Pure helpers of the network seam: Retry-After, Content-Range, backoff with jitter."""
from __future__ import annotations

from email.utils import format_datetime
from datetime import datetime, timedelta, timezone

import pytest

from comfyui_model_resolver.downloads import RetryPolicy
from comfyui_model_resolver.downloads.http import parse_content_range
from comfyui_model_resolver.upstream import parse_retry_after


def test_retry_after_seconds_and_http_dates():
    assert parse_retry_after("7") == 7.0 and parse_retry_after(" 1.5 ") == 1.5
    now = datetime(2030, 1, 1, tzinfo=timezone.utc)
    date = format_datetime(now + timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(date, now=now.timestamp()) == pytest.approx(90)
    assert parse_retry_after(format_datetime(now - timedelta(seconds=5), usegmt=True), now=now.timestamp()) == 0
    for junk in (None, "", "soon", "-3", "1.5e9x", "inf", "nan"):
        assert parse_retry_after(junk) is None


def test_content_range():
    assert parse_content_range("bytes 0-99/1000") == (0, 99, 1000)
    assert parse_content_range("bytes */1000") == (None, None, 1000)
    assert parse_content_range("bytes 5-9/*") == (5, 9, None)
    assert parse_content_range("items 0-1/2") == (None, None, None)
    assert parse_content_range(None) == (None, None, None)


def test_backoff_grows_is_capped_has_jitter_and_obeys_retry_after():
    p = RetryPolicy(base=1.0, cap=30.0)
    low, high = (lambda: 0.0), (lambda: 0.999)
    assert [p.delay(n, rand=low) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert p.delay(10, rand=low) == 15.0 and p.delay(10, rand=high) < 45.0  # capped at 30 +-50 %
    assert p.delay(1, rand=high) > p.delay(1, rand=low)  # jitter spreads clients apart
    assert 12.0 <= p.delay(3, retry_after=12.0) < 13.0  # the server's wait wins over the backoff
