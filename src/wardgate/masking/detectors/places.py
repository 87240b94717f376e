"""Street addresses and cities, found from the numbers around them: a house number followed by
words and a street suffix, and the words before ", ST 12345"."""

from __future__ import annotations

import re

from wardgate.masking.detectors.base import words

# Street suffixes: the primary names and standard abbreviations of USPS Publication 28
# (appendix C1), which the Postal Service applies to every US street, and which generators of
# synthetic addresses (Synthea, Faker: "7488 Weeks Divide") draw theirs from.
_STREET_SUFFIXES = words(
    "Alley Aly Anex Anx Arcade Arc Avenue Ave Av Bayou Byu Beach Bch Bend Bnd Bluff Blf Bluffs "
    "Blfs Bottom Btm Boulevard Blvd Branch Br Bridge Brg Brook Brk Brooks Brks Burg Bg Burgs "
    "Bgs Bypass Byp Camp Cp Canyon Cyn Cape Cpe Causeway Cswy Center Ctr Centers Ctrs Circle "
    "Cir Circles Cirs Cliff Clf Cliffs Clfs Club Clb Common Cmn Commons Cmns Corner Cor "
    "Corners Cors Course Crse Court Ct Courts Cts Cove Cv Coves Cvs Creek Crk Crescent Cres "
    "Crest Crst Crossing Xing Crossroad Xrd Crossroads Xrds Curve Curv Dale Dl Dam Dm Divide "
    "Dv Drive Dr Drives Drs Estate Est Estates Ests Expressway Expy Extension Ext Extensions "
    "Exts Fall Falls Fls Ferry Fry Field Fld Fields Flds Flat Flt Flats Flts Ford Frd Fords "
    "Frds Forest Frst Forge Frg Forges Frgs Fork Frk Forks Frks Fort Ft Freeway Fwy Garden Gdn "
    "Gardens Gdns Gateway Gtwy Glen Gln Glens Glns Green Grn Greens Grns Grove Grv Groves Grvs "
    "Harbor Hbr Harbors Hbrs Haven Hvn Heights Hts Highway Hwy Hill Hl Hills Hls Hollow Holw "
    "Inlet Inlt Island Is Islands Iss Isle Junction Jct Junctions Jcts Key Ky Keys Kys Knoll "
    "Knl Knolls Knls Lake Lk Lakes Lks Land Landing Lndg Lane Ln Light Lgt Lights Lgts Loaf Lf "
    "Lock Lck Locks Lcks Lodge Ldg Loop Mall Manor Mnr Manors Mnrs Meadow Mdw Meadows Mdws Mews "
    "Mill Ml Mills Mls Mission Msn Motorway Mtwy Mount Mt Mountain Mtn Mountains Mtns Neck Nck "
    "Orchard Orch Oval Overpass Opas Park Parks Parkway Pkwy Parkways Pass Passage Psge Path "
    "Pike Pine Pne Pines Pnes Place Pl Plain Pln Plains Plns Plaza Plz Point Pt Points Pts "
    "Port Prt Ports Prts Prairie Pr Radial Radl Ramp Ranch Rnch Rapid Rpd Rapids Rpds Rest Rst "
    "Ridge Rdg Ridges Rdgs River Riv Road Rd Roads Rds Route Rte Row Rue Run Shoal Shl Shoals "
    "Shls Shore Shr Shores Shrs Skyway Skwy Spring Spg Springs Spgs Spur Spurs Square Sq "
    "Squares Sqs Station Sta Stravenue Stra Stream Strm Street St Streets Sts Summit Smt "
    "Terrace Ter Throughway Trwy Trace Trce Track Trak Trafficway Trfy Trail Trl Trailer Trlr "
    "Tunnel Tunl Turnpike Tpke Underpass Upas Union Un Unions Uns Valley Vly Valleys Vlys "
    "Viaduct Via View Vw Views Vws Village Vlg Villages Vlgs Ville Vl Vista Vis Walk Walks "
    "Wall Way Ways Well Wl Wells Wls Close Crescent Gate Gardens Grange Quay"
)
# A street word: capitalised ("Weeks") or in capitals ("WEEKS", in an upper-cased note).
_STREET_WORD = r"(?:[A-Z][a-z']+|[A-Z][A-Z']+)"


def _suffix(word: str) -> str:
    return f"{word}|{word.upper()}"


_STREET = re.compile(
    r"\d{1,6}(?:-\d{1,4})? (?:[NSEW]\.? |(?:North|South|East|West) )?"
    r"(?:" + _STREET_WORD + r"\.? |\d{1,3}(?i:st|nd|rd|th) ){1,3}"
    r"(?:"
    + "|".join(_suffix(w) for w in sorted(set(_STREET_SUFFIXES), key=len, reverse=True))
    + r")\b\.?"
    r"(?:,? (?:(?i:Apt|Apartment|Suite|Ste|Unit)\b\.?|#) ?#?[\w-]{1,6})?"
)
# a city before its state: "Lake Mary, FL ", "LAKE MARY FL ", "Lake Mary | FL | "
_CITY = re.compile(r"((?:[A-Z][a-zA-Z.'-]+ ){0,3}[A-Z][a-zA-Z.'-]+) ?[,|]? [A-Z]{2} ?[,|]? ?$")
_NOT_CITY = frozenset({"Pt", "Patient", "Lives", "In", "At", "From", "Moved", "To", "Address"})


def street_at(text: str, start: int) -> int | None:
    """The end of a street address starting at `start`, if one does."""
    m = _STREET.match(text, start)
    return None if m is None else m.end()


def city_before_state(text: str, zip_start: int) -> tuple[int, int] | None:
    m = _CITY.search(text, max(0, zip_start - 48), zip_start)
    if m is None:
        return None
    words = m[1].split(" ")
    while words and words[0] in _NOT_CITY:
        words.pop(0)
    if not words:
        return None
    end = m.end(1)
    return end - len(" ".join(words)), end
