"""DataForSEO v3 Google Search by Image: endpoints, limits, prices and status codes.

Sources: ``shared/api/provider-facts.md`` (task_post, tasks_ready, id_list, user_data, errors,
prices) and the task_get/advanced reference page.
"""

from enum import StrEnum

PROVIDER = "dataforseo"
PRODUCTION_URL = "https://api.dataforseo.com"
LOGIN_ENV = "DATAFORSEO_LOGIN"
PASSWORD_ENV = "DATAFORSEO_PASSWORD"

TASK_POST = "/v3/serp/google/search_by_image/task_post"
TASKS_READY = "/v3/serp/google/search_by_image/tasks_ready"
TASKS_FIXED = "/v3/serp/google/search_by_image/tasks_fixed"  # re-parsed in the last 24 hours
TASK_GET_ADVANCED = "/v3/serp/google/search_by_image/task_get/advanced/"  # + task id
ID_LIST = "/v3/serp/id_list"
USER_DATA = "/v3/appendix/user_data"
LOCATIONS = "/v3/serp/google/locations"  # + "/{country_iso_code}" for one country
LANGUAGES = "/v3/serp/google/languages"

# Above this size, a task_get body is decoded without its items (the client), or with its
# items a chunk at a time (the flatten): a 100 MB SERP would take most of a GB as Python objects.
SKELETON_ABOVE_BYTES = 8 * 2**20
ITEMS_PATH = ("tasks", 0, "result", 0, "items")  # where a body's items are

MAX_TASKS_PER_POST = 100
MAX_TASKS_READY = 1000
MAX_ID_LIST_LIMIT = 1000
RESULTS_KEPT_DAYS = 30  # task_get is free for 30 days after posting, then 40403
RESULTS_EXPIRED = 40403
TASKS_READY_DAYS = 3  # tasks_ready lists completed tasks of the last three days only
ID_LIST_METADATA_DAYS = 30  # id_list returns a task's metadata (with its tag) for one month
TAG_MAX_LENGTH = 255

# Calls per minute. task_get, user_data, locations and languages have no documented limit of
# their own: they get the account-wide 2000 of task_post; tasks_fixed gets tasks_ready's.
CALLS_PER_MINUTE = {
    TASK_POST: 2000,
    TASKS_READY: 20,
    TASKS_FIXED: 20,
    TASK_GET_ADVANCED: 2000,
    ID_LIST: 10,
    USER_DATA: 2000,
    LOCATIONS: 2000,
    LANGUAGES: 2000,
}
MAX_SIMULTANEOUS_REQUESTS = 30

CURRENCY = "USD"
# USD per task (one page of 100 results), Standard method.
PRICE_PER_PAGE = {1: 0.0006, 2: 0.0012}
# The longest image_url posted. task_post's page names no limit; 2048 characters is the longest
# URL that Google (and most servers) accept: a longer one is a mistake, refused before it is
# paid for.
MAX_IMAGE_URL_CHARS = 2048


def task_price(
    priority: int, max_crawl_pages: int = 1, calculate_rectangles: bool = False
) -> float:
    price = PRICE_PER_PAGE[priority] * max_crawl_pages
    return round(price * 2 if calculate_rectangles else price, 8)


class Outcome(StrEnum):
    """What a status code means for the pipeline."""

    SUCCESS = "success"
    NOT_READY = "not_ready"  # poll again later
    BILLED_EMPTY = "billed_empty"  # a legitimately empty SERP, billed: not an error to retry
    RETRYABLE = "retryable"  # transient: the same call may succeed later
    PERMANENT = "permanent"  # retrying the same call will not help
    UNKNOWN = "unknown"  # a code this version does not know: reported, never guessed


STATUS_OUTCOMES: dict[int, Outcome] = {
    20000: Outcome.SUCCESS,
    20100: Outcome.SUCCESS,
    40006: Outcome.PERMANENT,
    40100: Outcome.PERMANENT,
    40101: Outcome.PERMANENT,
    40102: Outcome.BILLED_EMPTY,
    40103: Outcome.PERMANENT,  # "resubmit": a new paid task, which only the user may decide
    40200: Outcome.PERMANENT,
    40201: Outcome.PERMANENT,
    40202: Outcome.RETRYABLE,
    40203: Outcome.PERMANENT,
    40204: Outcome.PERMANENT,
    40205: Outcome.PERMANENT,
    40206: Outcome.PERMANENT,
    40209: Outcome.RETRYABLE,
    40210: Outcome.PERMANENT,
    40401: Outcome.PERMANENT,
    40403: Outcome.PERMANENT,
    40501: Outcome.PERMANENT,
    40503: Outcome.PERMANENT,
    40506: Outcome.PERMANENT,
    40601: Outcome.NOT_READY,
    40602: Outcome.NOT_READY,
    50000: Outcome.RETRYABLE,
    50001: Outcome.RETRYABLE,
    50100: Outcome.RETRYABLE,
    50301: Outcome.RETRYABLE,
    50303: Outcome.RETRYABLE,
    50304: Outcome.RETRYABLE,
    50401: Outcome.RETRYABLE,
}


def classify(status_code: object, status_message: object = None) -> Outcome:
    """Classify a top-level or per-task ``status_code``.

    One public client reports "No Search Results" arriving as 40501, so the message is read
    too: an empty SERP is billed and final whatever code carries it.
    """
    if type(status_code) is not int:
        return Outcome.UNKNOWN
    if isinstance(status_message, str) and "no search results" in status_message.lower():
        return Outcome.BILLED_EMPTY
    if status_code in STATUS_OUTCOMES:
        return STATUS_OUTCOMES[status_code]
    # DataForSEO numbers server-side errors 5xxxx: any of them is worth a later retry.
    return Outcome.RETRYABLE if 50000 <= status_code <= 59999 else Outcome.UNKNOWN
