"""HTTP client for SemScraper's Google SERP API (and the built-in sandbox).

The same money rules as DataForSEO's client: creating scrapes is billed and sent once. It is
retried only when the request certainly never reached the server or was refused whole (429);
any other failure after sending raises ``PostOutcomeUnknown``. Every GET is free and retried
with backoff. A 400 surfaces the API's own ``message``.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import httpx
import orjson

from serp_etl.core.http import (
    DEFAULT_MAX_RESPONSE_MB,
    NOT_SENT_ERRORS,
    TRANSIENT_ERRORS,
    Clock,
    RateLimitedClient,
    RateLimiter,
    Retry,
    RetryPolicy,
    Sleep,
    default_timeout,
)
from serp_etl.core.json_spans import array_spans
from serp_etl.core.jsondecode import Undecodable, decode, json_number
from serp_etl.providers.semscraper import settings

DEFAULT_RETRY = RetryPolicy()


class SemScraperError(Exception):
    """Base class of every error this client raises."""


class ApiError(SemScraperError):
    def __init__(self, endpoint: str, status: int, message: object) -> None:
        self.status = status
        self.message = message
        super().__init__(f"{endpoint}: HTTP {status}: {message}")


class PostOutcomeUnknown(SemScraperError):
    """The create call was sent but its outcome is unknown: the scrapes may exist and be billed."""


class InvalidScrape(SemScraperError, ValueError):
    """A scrape refused before any call, with the field that is wrong."""


class InvalidScrapeId(SemScraperError, ValueError):
    def __init__(self, scrape_id: object) -> None:
        super().__init__(f"not a SemScraper id (letters, digits, '-', '_'): {scrape_id!r}")


@dataclass(frozen=True)
class Scrape:
    """What to scrape, as POST /serp/google takes it; checked when built."""

    keyword: str
    location: str
    language: str
    device: str = "desktop"
    depth: int = 1
    priority: int | None = None
    geolocation: str | None = None
    callback_url: str | None = None
    search_engine: str = "google_search"

    def __post_init__(self) -> None:
        for name in ("keyword", "location", "language"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise InvalidScrape(f"{name} is required (a non-empty string)")
        for name, most in (
            ("keyword", settings.MAX_KEYWORD_CHARS),
            ("geolocation", settings.MAX_KEYWORD_CHARS),
        ):
            value = getattr(self, name)
            if isinstance(value, str) and len(value) > most:
                raise InvalidScrape(
                    f"{name} has {len(value)} characters; at most {most} are "
                    f"accepted ({value[:40]!r}...)"
                )
        if self.search_engine not in settings.SEARCH_ENGINES:
            raise InvalidScrape(f"search_engine must be one of {settings.SEARCH_ENGINES}")
        if self.device not in settings.DEVICES:
            raise InvalidScrape(f"device must be one of {settings.DEVICES}, got {self.device!r}")
        for name, (low, high) in (
            ("depth", settings.DEPTH_RANGE),
            ("priority", settings.PRIORITY_RANGE),
        ):
            value = getattr(self, name)
            if value is not None and (type(value) is not int or not low <= value <= high):
                raise InvalidScrape(
                    f"{name} must be an integer from {low} to {high}, got {value!r}"
                )
        if self.callback_url is not None and not self.callback_url.startswith(
            ("http://", "https://")
        ):
            raise InvalidScrape(f"callback_url must be an http(s) URL, got {self.callback_url!r}")

    def body(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    def price(self) -> float:
        return settings.scrape_price(self.depth)


@dataclass(frozen=True)
class RetrievedSerp:
    """One SERP of a retrieve answer: its bytes as received, and what they decode to."""

    body: bytes
    serp: dict | None  # None: not JSON even for a lenient reader (``error`` says why)
    repairs: tuple[str, ...] = ()
    error: str | None = None

    @property
    def scrape_id(self) -> str | None:
        if self.serp is not None:
            scrape_id = self.serp.get("id")
        else:  # undecodable: its id may still be read
            found = _ID.search(self.body)
            scrape_id = found.group(1).decode() if found else None
        return (
            scrape_id
            if isinstance(scrape_id, str) and settings.SCRAPE_ID.match(scrape_id)
            else None
        )


@dataclass(frozen=True)
class RetrieveAnswer:
    serps: list[RetrievedSerp]
    # The answer as received with its "data" array emptied: its status, request_ms and count.
    envelope: bytes


_ID = re.compile(rb'"id"\s*:\s*"([A-Za-z0-9_-]{1,64})"')


def split_answer(content: bytes) -> RetrieveAnswer:
    """A retrieve answer's SERPs, each as the exact bytes it arrived as and decoded on its
    own: one SERP that is not JSON does not take its batch-mates with it."""
    spans = array_spans(content, ("data",))
    if spans is None:
        raise SemScraperError(f"{settings.SERPS}: malformed response, expected a 'data' array")
    (start, end), elements = spans
    serps = []
    for first, last in elements:
        body = content[first:last]
        try:
            serp, repairs = decode(body, duplicates=True)
        except Undecodable as error:
            serps.append(RetrievedSerp(body, None, error=str(error)))
            continue
        serps.append(
            RetrievedSerp(
                body,
                serp if type(serp) is dict else None,
                repairs,
                None if type(serp) is dict else "not an object",
            )
        )
    return RetrieveAnswer(serps, content[:start] + b"[]" + content[end:])


def check_scrape_id(scrape_id: object) -> str:
    if not isinstance(scrape_id, str) or not settings.SCRAPE_ID.match(scrape_id):
        raise InvalidScrapeId(scrape_id)
    return scrape_id


class SemScraperClient(RateLimitedClient):
    error = SemScraperError

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        limiter: RateLimiter | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: httpx.Timeout | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        clock: Clock = time.time,
        sleep: Sleep = time.sleep,
        max_response_mb: int = DEFAULT_MAX_RESPONSE_MB,
    ) -> None:
        """``limiter``: the account's shared one (see ``RateLimiter``); by default, one for this
        client alone. Answers over ``max_response_mb`` are refused, naming the cap."""
        http = httpx.Client(
            base_url=base_url,
            transport=transport,
            timeout=timeout or default_timeout(),
            headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
        )
        limiter = limiter or RateLimiter(
            None, api_key, settings.CALLS_PER_MINUTE, clock=clock, sleep=sleep
        )
        super().__init__(http, limiter, retry=retry, sleep=sleep, max_response_mb=max_response_mb)

    def _send(self, method: str, path: str, **kwargs) -> httpx.Response:
        return self._request(method, method, path, **kwargs)

    @staticmethod
    def _data(path: str, response: httpx.Response) -> tuple[list, dict]:
        try:
            body, _ = decode(response.content)
        except Undecodable:
            body = None
        if response.status_code != 200:
            message = body.get("message") if type(body) is dict else response.text[:200]
            raise ApiError(path, response.status_code, message)
        if type(body) is not dict or type(body.get("data")) is not list:
            raise SemScraperError(f"{path}: malformed response, expected a 'data' array")
        return body["data"], body

    def _get_response(self, path: str, params: dict | None) -> httpx.Response:
        """One free GET that answered 200 (or an ApiError); transient failures are Retry."""
        try:
            response = self._send("GET", path, params=params)
        except TRANSIENT_ERRORS as error:
            raise Retry(error) from error
        if response.status_code >= 500 or response.status_code == 429:
            self._obey_retry_after("GET", response)
            raise Retry(ApiError(path, response.status_code, response.text[:200]))
        if response.status_code != 200:
            self._data(path, response)  # raises the API's own message
        return response

    def _get(self, path: str, params: dict | None = None) -> tuple[list, dict]:
        """A free GET, retried with backoff on transport errors, 5xx, 429 and bad bodies."""

        def attempt() -> tuple[list, dict]:
            response = self._get_response(path, params)
            try:
                return self._data(path, response)
            except ApiError:
                raise
            except SemScraperError as error:
                raise Retry(error) from error  # a truncated body is worth another try

        return self._retrying(attempt, gave_up=lambda why: SemScraperError(f"{path}: {why}"))

    # -- endpoints ---------------------------------------------------------------------------

    def locations(self) -> list[dict]:
        return [d for d in self._get(settings.LOCATIONS)[0] if type(d) is dict]

    def create(self, scrapes: list[Scrape]) -> tuple[list[dict], dict]:
        """Create up to 100 scrapes in one billed call; returns (created, the whole answer)."""
        if not 0 < len(scrapes) <= settings.MAX_SCRAPES_PER_POST:
            raise ValueError(
                f"1 to {settings.MAX_SCRAPES_PER_POST} scrapes per call, got {len(scrapes)}"
            )
        content = orjson.dumps([s.body() for s in scrapes])

        def attempt() -> tuple[list[dict], dict]:
            try:
                response = self._send("POST", settings.SERPS, content=content)
            except NOT_SENT_ERRORS as error:
                raise Retry(error) from error  # nothing reached the server
            except TRANSIENT_ERRORS as error:
                raise PostOutcomeUnknown(
                    f"{settings.SERPS}: {type(error).__name__} after sending: {error}"
                ) from error
            if response.status_code == 429:
                # Refused whole by the rate limit: nothing was created.
                self._obey_retry_after("POST", response)
                raise Retry(ApiError(settings.SERPS, 429, response.text[:200]))
            if response.status_code >= 500:
                raise PostOutcomeUnknown(
                    f"{settings.SERPS}: HTTP {response.status_code} after sending"
                )
            try:
                return self._data(settings.SERPS, response)
            except ApiError:
                raise
            except SemScraperError as error:
                raise PostOutcomeUnknown(str(error)) from error

        return self._retrying(
            attempt,
            gave_up=lambda why: SemScraperError(f"{settings.SERPS}: nothing was created, {why}"),
        )

    def completed_not_retrieved(self) -> list[dict]:
        return [d for d in self._get(settings.SERPS)[0] if type(d) is dict]

    def retrieve(self, ids: list[str], output: str = "json") -> list[dict]:
        """SERPs by id, up to 100 a call, as JSON (with results) or HTML, decoded."""
        if output == "json":
            return [s.serp for s in self.retrieve_answer(ids).serps if s.serp is not None]
        data, _ = self._get(settings.SERPS, self._ids_query(ids, output))
        return [d for d in data if type(d) is dict]

    def retrieve_answer(self, ids: list[str]) -> RetrieveAnswer:
        """SERPs by id as JSON, each with the exact bytes it arrived as (``split_answer``)."""
        query = self._ids_query(ids, "json")

        def attempt() -> RetrieveAnswer:
            response = self._get_response(settings.SERPS, query)
            try:
                return split_answer(response.content)
            except SemScraperError as error:
                raise Retry(error) from error  # a truncated body is worth another try

        return self._retrying(
            attempt, gave_up=lambda why: SemScraperError(f"{settings.SERPS}: {why}")
        )

    @staticmethod
    def _ids_query(ids: list[str], output: str) -> dict:
        if not 0 < len(ids) <= settings.MAX_IDS_PER_GET:
            raise ValueError(f"1 to {settings.MAX_IDS_PER_GET} ids per call, got {len(ids)}")
        if output not in settings.OUTPUTS:
            raise ValueError(f"output must be one of {settings.OUTPUTS}")
        return {"ids": ",".join(check_scrape_id(i) for i in ids), "output": output}

    def status(self) -> list[dict]:
        return [d for d in self._get(settings.STATUS)[0] if type(d) is dict]

    def credit(self) -> float:
        (entry,) = self._get(settings.CREDIT)[0] or [{}]
        balance = json_number(entry.get("balance")) if type(entry) is dict else None
        if balance is None:
            raise SemScraperError(f"{settings.CREDIT}: no numeric balance in {entry!r}")
        return balance

    def payment_methods(self) -> list[dict]:
        return [d for d in self._get(settings.PAYMENT_METHODS)[0] if type(d) is dict]
