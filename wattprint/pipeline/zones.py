"""Zone identity: the one canonical spelling of a carbon-intensity zone id, wherever zones are stored or compared.

Zone ids compare case-insensitively (ASCII letters), with surrounding whitespace ignored and, in
`<provider>:<region>` ids, whitespace around the first colon ignored; `UK` is `GB` (ISO 3166-1). The
canonical spelling is the one of the shipped annual table (`wattprint/pipeline/data/intensity_annual.csv`) when it
knows the zone (`FR`, `gcp:europe-west1`, `world`), else upper case, as Electricity Maps, WattTime and ISO
codes are written (`US-CAL-CISO`, `CAISO_NORTH`, `GB-13`).

Intensity imports, fetches, the config's `clusters.<name>.zone`, `estimate` / declared phases and
`serve-intensity` all pass zones through `canonical_zone`, so `fr` in the config prices with imported `FR`
hours. Migration 0004 applies the same rule in SQL to zones stored before it.
"""

from __future__ import annotations

import string
from functools import cache

ALIASES = {"uk": "gb"}       # lower-case alias -> lower-case zone (the shipped table accepts UK for GB)
_UPPER = str.maketrans(string.ascii_lowercase, string.ascii_uppercase)
_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def _fold(zone: str) -> str:
    """The comparison key: ASCII lower case (non-ASCII letters are kept as they are, so no Unicode case rule
    can make a lookalike such as the Kelvin sign match a shipped zone)."""
    return zone.translate(_LOWER)


@cache
def _known() -> dict[str, str]:
    from .sources.intensity import embedded  # not at import time: embedded's package imports this module

    return {_fold(row.zone): row.zone for row in embedded.load()}


def canonical_zone(zone: str) -> str:
    """The canonical spelling of a zone id (see the module doc). Empty stays empty; callers refuse it."""
    z = zone.strip()
    provider, colon, region = z.partition(":")
    if colon:
        z = f"{provider.strip()}:{region.strip()}"
    key = _fold(z)
    key = ALIASES.get(key, key)
    known = _known().get(key)
    return known if known is not None else key.translate(_UPPER)


def same_zone(a: str, b: str) -> bool:
    """Whether two zone ids name the same zone."""
    return canonical_zone(a) == canonical_zone(b)
