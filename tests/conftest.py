"""Test configuration shared by the whole suite (see Makefile: make test)."""

from __future__ import annotations

import os

os.environ.setdefault("DEBUG", "1")
