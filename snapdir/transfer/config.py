"""Transfer settings, validated at construction.

Memory bound (bytes held by transfers at once)::

    jobs × small_object_limit                       whole small objects being sent/received
  + jobs × small_object_limit                       whole objects sent (push, sync) above
                                                    the limit, below multipart_threshold:
                                                    a budget of bytes they share
  + large_jobs × part_concurrency × part_size       multipart uploads
  + 2 × range_window × range_size                   ranged GETs from a file store, or with
                                                    ``direct_io``: bytes arriving, then in
                                                    our buffers until hashed

With the defaults, a push holds at most 2 × 32 × 8 MiB + 2 × 8 × 8 MiB = 640 MiB and a pull
32 × 8 MiB + 2 × 12 × 16 MiB = 640 MiB; in practice small objects are far below the limit.
Ranged GETs from S3 through the page cache hold only a 256 KiB receive buffer per worker
thread that has run one (``stores/s3ranges.py``; at most ``SNAPDIR_IO_THREADS`` × 256 KiB,
8 MiB by default): such a pull holds at most 32 × 8 MiB + 8 MiB. None of it grows with
file size or dataset size.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import settings
from ..errors import UsageError

MiB = 1024 * 1024
S3_MAX_PARTS = 10_000
S3_MIN_PART = 5 * MiB
#: S3's largest part: a larger ``part_size`` would also read a file that large into memory
S3_MAX_PART = 5 * 1024 * MiB


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferConfig:
    jobs: int = field(default_factory=settings.jobs)
    retries: int = field(default_factory=settings.retries)
    #: objects at least this large go multipart / ranged, others in one request
    multipart_threshold: int = 64 * MiB
    part_size: int = 8 * MiB
    #: bytes per ranged GET when downloading a large object, rounded up to whole pages.
    #: From S3 each range is written into the file as it arrives (no buffer of ours):
    #: 4 x 256 MiB through SeaweedFS, wall 2.0-2.1 s with 16 MiB ranges, 2.1-2.6 s with
    #: 8 MiB; 2 GiB, 32 MiB ranges 6 at a time no faster than 16 MiB 8 at a time. Other
    #: stores' ranges (and ``direct_io``'s) are received whole into one buffer each.
    range_size: int = 16 * MiB
    #: parts of one large object in flight: multipart upload parts, ranged GETs
    part_concurrency: int = 8
    #: ranges held in memory at once by every ranged download together: those in flight
    #: and those received but waiting for an earlier one to be hashed (file order)
    range_window: int = 12
    #: write ranged downloads past the page cache (O_DIRECT) where the filesystem can
    #: (off by default: see fileio.py)
    direct_io: bool = field(default_factory=settings.direct_io)
    #: how many large objects move at once (each with part_concurrency parts)
    large_jobs: int = 2
    small_object_limit: int = 8 * MiB
    backoff_base: float = 0.1
    backoff_cap: float = 5.0

    def __post_init__(self) -> None:
        for name in ("jobs", "retries", "multipart_threshold", "part_size", "range_size",
                     "part_concurrency", "range_window", "large_jobs", "small_object_limit"):
            value = getattr(self, name)
            # a float part size failed the push later as 'cannot reach' the store
            if isinstance(value, bool) or not isinstance(value, int):
                raise UsageError(f"{name}={value!r} is not an integer; give a whole number")
            if value < 1:
                raise UsageError(f"{name} must be at least 1")
        if self.part_size < S3_MIN_PART:
            raise UsageError(f"part_size must be at least {S3_MIN_PART} bytes (S3's minimum)")
        if self.part_size > S3_MAX_PART:
            raise UsageError(f"part_size must be at most {S3_MAX_PART} bytes (S3's maximum)")

    def part_size_for(self, size: int) -> int:
        """A part size that keeps ``size`` within S3's 10,000-part limit."""
        part = self.part_size
        while -(-size // part) > S3_MAX_PARTS:
            part *= 2
        return part
