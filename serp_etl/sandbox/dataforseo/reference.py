"""The sandbox's Google SERP locations and languages: a realistic subset of DataForSEO's lists.

Countries carry Google's criteria codes (2000 + the ISO 3166 numeric code: 2840 is the United
States), cities their own codes and their country as parent, with DataForSEO's comma-separated
names ("Chicago,Illinois,United States"). Task names and codes must match these exactly.
"""

from __future__ import annotations

# (ISO alpha-2, ISO numeric, name)
COUNTRIES = [
    ("AR", 32, "Argentina"),
    ("AU", 36, "Australia"),
    ("AT", 40, "Austria"),
    ("BE", 56, "Belgium"),
    ("BR", 76, "Brazil"),
    ("CA", 124, "Canada"),
    ("CL", 152, "Chile"),
    ("CO", 170, "Colombia"),
    ("CZ", 203, "Czechia"),
    ("DK", 208, "Denmark"),
    ("EG", 818, "Egypt"),
    ("FI", 246, "Finland"),
    ("FR", 250, "France"),
    ("DE", 276, "Germany"),
    ("GR", 300, "Greece"),
    ("HK", 344, "Hong Kong"),
    ("HU", 348, "Hungary"),
    ("IN", 356, "India"),
    ("ID", 360, "Indonesia"),
    ("IE", 372, "Ireland"),
    ("IL", 376, "Israel"),
    ("IT", 380, "Italy"),
    ("JP", 392, "Japan"),
    ("KE", 404, "Kenya"),
    ("MY", 458, "Malaysia"),
    ("MX", 484, "Mexico"),
    ("NL", 528, "Netherlands"),
    ("NZ", 554, "New Zealand"),
    ("NG", 566, "Nigeria"),
    ("NO", 578, "Norway"),
    ("PE", 604, "Peru"),
    ("PH", 608, "Philippines"),
    ("PL", 616, "Poland"),
    ("PT", 620, "Portugal"),
    ("RO", 642, "Romania"),
    ("SA", 682, "Saudi Arabia"),
    ("SG", 702, "Singapore"),
    ("ZA", 710, "South Africa"),
    ("KR", 410, "South Korea"),
    ("ES", 724, "Spain"),
    ("SE", 752, "Sweden"),
    ("CH", 756, "Switzerland"),
    ("TW", 158, "Taiwan"),
    ("TH", 764, "Thailand"),
    ("TR", 792, "Turkey"),
    ("UA", 804, "Ukraine"),
    ("AE", 784, "United Arab Emirates"),
    ("GB", 826, "United Kingdom"),
    ("US", 840, "United States"),
    ("VN", 704, "Vietnam"),
]
# (code, name, country ISO alpha-2)
CITIES = [
    (1016367, "Chicago,Illinois,United States", "US"),
    (1023191, "New York,New York,United States", "US"),
    (1013962, "Los Angeles,California,United States", "US"),
    (1006886, "London,England,United Kingdom", "GB"),
    (1006094, "Paris,Ile-de-France,France", "FR"),
    (1003854, "Berlin,Berlin,Germany", "DE"),
    (1004234, "Munich,Bavaria,Germany", "DE"),
    (1005493, "Madrid,Community of Madrid,Spain", "ES"),
    (1002451, "Toronto,Ontario,Canada", "CA"),
    (1000286, "Sydney,New South Wales,Australia", "AU"),
    (1009309, "Tokyo,Tokyo,Japan", "JP"),
]
LANGUAGES = [
    ("Arabic", "ar"),
    ("Chinese (Simplified)", "zh-CN"),
    ("Chinese (Traditional)", "zh-TW"),
    ("Czech", "cs"),
    ("Danish", "da"),
    ("Dutch", "nl"),
    ("English", "en"),
    ("Finnish", "fi"),
    ("French", "fr"),
    ("German", "de"),
    ("Greek", "el"),
    ("Hebrew", "he"),
    ("Hindi", "hi"),
    ("Hungarian", "hu"),
    ("Indonesian", "id"),
    ("Italian", "it"),
    ("Japanese", "ja"),
    ("Korean", "ko"),
    ("Malay", "ms"),
    ("Norwegian (Bokmål)", "nb"),
    ("Polish", "pl"),
    ("Portuguese", "pt"),
    ("Romanian", "ro"),
    ("Russian", "ru"),
    ("Spanish", "es"),
    ("Swedish", "sv"),
    ("Tagalog", "tl"),
    ("Thai", "th"),
    ("Turkish", "tr"),
    ("Ukrainian", "uk"),
    ("Vietnamese", "vi"),
]


def locations() -> list[dict]:
    """Every location, as ``GET /v3/serp/google/locations`` lists them."""
    countries = [
        {
            "location_code": 2000 + numeric,
            "location_name": name,
            "location_code_parent": None,
            "country_iso_code": iso,
            "location_type": "Country",
        }
        for iso, numeric, name in COUNTRIES
    ]
    parent = {c["country_iso_code"]: c["location_code"] for c in countries}
    cities = [
        {
            "location_code": code,
            "location_name": name,
            "location_code_parent": parent[iso],
            "country_iso_code": iso,
            "location_type": "City",
        }
        for code, name, iso in CITIES
    ]
    return countries + cities


def languages() -> list[dict]:
    """Every language, as ``GET /v3/serp/google/languages`` lists them."""
    return [{"language_name": name, "language_code": code} for name, code in LANGUAGES]
