"""``workplane`` as the tests run it in a process of its own: the same command line, with access-key
secrets hashed at the tests' small work (``tests/conftest.py``, ``LIGHT_SCRYPT``) instead of OWASP's.

A test server hashes the administrator secret it creates and checks a secret for each token it gives
(every client's sign-in, runapy's included): 0.22 CPU-s each at full strength on this machine, about
half of what a test's server start costs. ``running_server(..., strong_hashing=True)`` starts the
package's own entry point instead, for the tests whose subject is that cost (concurrent guesses).
Run as a script; imported, it only names the parameters. They are set at its top level, so the
processes that ``serve --workers`` spawns (which run this file again as ``__mp_main__``) hash the same
way.
"""

from __future__ import annotations

import sys

from workplane import cli
from workplane.auth import credentials

LIGHT_SCRYPT = (2**4, 8, 1)

if __name__ in ("__main__", "__mp_main__"):
    credentials._N, credentials._R, credentials._P = LIGHT_SCRYPT
if __name__ == "__main__":
    sys.exit(cli.main())
