"""Argon2id with small parameters for tests that exercise API behaviour, not hashing cost
(tests/integration/test_staff.py keeps and checks the production parameters)."""

from __future__ import annotations

from argon2 import PasswordHasher

FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)
