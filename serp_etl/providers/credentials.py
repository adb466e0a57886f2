"""Every environment variable that holds a provider credential: while one is set, the mode must
be chosen explicitly (``serp_etl.core.mode``)."""

from serp_etl.core.mode import Mode, resolve_mode
from serp_etl.providers.dataforseo.settings import LOGIN_ENV, PASSWORD_ENV
from serp_etl.providers.semscraper.settings import API_KEY_ENV, HMAC_KEY_ENV

CREDENTIAL_ENV_VARS = (LOGIN_ENV, PASSWORD_ENV, API_KEY_ENV, HMAC_KEY_ENV)


def run_mode(configured: str | None = None, instance_env_vars: tuple[str, ...] = ()) -> Mode:
    """The mode, given an instance's own credential variables too."""
    return resolve_mode(
        configured, tuple(dict.fromkeys((*CREDENTIAL_ENV_VARS, *instance_env_vars)))
    )
