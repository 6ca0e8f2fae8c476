"""Which live instance claims a job's occurrences first: rendezvous (highest random weight)
hashing of the job id over the instance names.

Every instance computes the same owner from the same list of names, with no coordination;
the jobs spread evenly; and when an instance joins or leaves, only the jobs it gains or
loses change owner. Ownership is a preference, never a guarantee: the claim in the store
still decides (invariant 2), so two instances that briefly disagree about who is alive
only claim some occurrences twice (one wins) or late (the others take over).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def weight(instance: str, job_id: str) -> int:
    digest = hashlib.blake2b(f"{instance}\x00{job_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner(job_id: str, instances: Sequence[str]) -> str:
    """The instance that claims the job first; `instances` must not be empty."""
    return max(instances, key=lambda instance: (weight(instance, job_id), instance))


class Shares:
    """Owners by job id for one list of live instances, computed once per job."""

    def __init__(self, instances: Sequence[str], me: str) -> None:
        self.instances = tuple(sorted(set(instances) | {me}))
        self.me = me
        self._mine: dict[str, bool] = {}

    def mine(self, job_id: str) -> bool:
        if len(self.instances) == 1:
            return True
        found = self._mine.get(job_id)
        if found is None:
            found = self._mine[job_id] = owner(job_id, self.instances) == self.me
        return found
