"""What an action prints, in the chunks it came in."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class OutputStream(enum.StrEnum):
    STDOUT = "STDOUT"
    STDERR = "STDERR"


@dataclass(frozen=True, slots=True)
class OutputChunk:
    seq: int
    stream: OutputStream
    text: str
    at: datetime
