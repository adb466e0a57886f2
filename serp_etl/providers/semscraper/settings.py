"""SemScraper Google SERP API: endpoints, limits, prices and field ranges.

Source: ``shared/api/semscraper-google-serp-api.md`` (its rendering lost square brackets:
``data``, ``results`` and ``items`` are JSON arrays) and ``provider-facts.md``.
"""

import hashlib
import hmac
import re

PROVIDER = "semscraper"
PRODUCTION_URL = "https://api.semscraper.com/v1"
API_KEY_ENV = "SEMSCRAPER_API_KEY"
HMAC_KEY_ENV = "SEMSCRAPER_HMAC_KEY"  # signs callback deliveries

LOCATIONS = "/serp/google/location"
SERPS = "/serp/google"  # POST: create; GET: completed, not retrieved; GET ?ids=: retrieve
STATUS = "/serp/google/status"
CREDIT = "/billing/credit"
PAYMENT_METHODS = "/billing/payment_methods"

MAX_SCRAPES_PER_POST = 100
MAX_IDS_PER_GET = 100
GET_CALLS_PER_MINUTE = 100
POST_CALLS_PER_MINUTE = 100
# One rate-limit bucket per HTTP method.
CALLS_PER_MINUTE = {"GET": GET_CALLS_PER_MINUTE, "POST": POST_CALLS_PER_MINUTE}

SEARCH_ENGINES = ("google_search",)
DEVICES = ("desktop", "mobile")
DEPTH_RANGE = (1, 10)  # pages of about 10 results
PRIORITY_RANGE = (1, 10)  # higher is processed first
# The longest keyword (and geolocation) sent. SemScraper's page names no limit; Google reads at
# most 32 words of a query, and DataForSEO's SERP API caps keywords at 700 characters: longer
# is a mistake (a pasted file), refused before it is paid for.
MAX_KEYWORD_CHARS = 700
OUTPUTS = ("json", "html")

# EUR per page of depth: the reference's examples bill 2.0e-5 for depth 1, 0.00010 for depth 5.
PRICE_PER_PAGE_EUR = 0.00002
CURRENCY = "EUR"

SIGNATURE_HEADER = "X-Signature"
# Ids go into a comma-separated query parameter: letters, digits, '-' and '_' only.
SCRAPE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def scrape_price(depth: int) -> float:
    return round(PRICE_PER_PAGE_EUR * depth, 8)


def signature(body: bytes, key: bytes) -> str:
    """How SemScraper signs a delivery: hex HMAC-SHA256 of the raw body, in SIGNATURE_HEADER.
    (Here, not beside the receiver: the sandbox signs too, without loading a web server.)"""
    return hmac.new(key, body, hashlib.sha256).hexdigest()
