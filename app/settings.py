"""Process configuration, read once from ``THERABRIDGE_*`` environment variables.

Only entry points call :func:`get_settings` (the CLI commands, ``create_app``'s default) and hand
the object down: routes find it in ``Services``, the payer side in the runtime ``app.bootstrap``
configures from it, and functions that need a value take it as an argument. (One exception
remains: ``app.auth.keys`` reads the key-encryption key where it seals private keys.) Nothing
else reads the environment, so a deployment is described completely by its variables.
"""
from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="THERABRIDGE_", extra="ignore")

    database_url: str = "sqlite:///./var/therabridge.db"
    public_url: str = "http://127.0.0.1:8000"
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    default_page_size: int = Field(default=50, ge=1)
    max_page_size: int = Field(default=1000, ge=1)
    default_tenant: str = "default"
    log_level: str = "info"
    # SQLite deployments run one background worker inside the server process; PostgreSQL ones
    # run `therabridge worker` processes instead.
    embedded_worker: bool = True

    # SMART authorization server
    backend_token_lifetime: int = 300
    app_token_lifetime: int = 3600
    refresh_token_lifetime: int = 90 * 24 * 3600
    auth_code_lifetime: int = 60
    assertion_max_lifetime: int = 300
    clock_skew: int = 60
    login_max_failures: int = 5
    login_lockout_seconds: int = 300
    # How often each process re-reads the revoked-token list (revocation reaches all replicas within it).
    revocation_poll_seconds: float = 1.0
    # Optional Fernet key; when set, the server's private signing keys are encrypted at rest.
    key_encryption_key: str | None = None
    # Where the demo writes its credentials (backend client key, demo user password).
    var_dir: str = "./var"
    # Requests per second each API client may make (per server process), and how many it may
    # make at once above that; 0 turns the limit off. Over it: 429 with Retry-After.
    rate_limit: float = Field(default=0.0, ge=0)
    rate_limit_burst: int = Field(default=100, ge=1)
    # payers
    # Seconds a real-time eligibility call may take before the request is queued instead.
    eligibility_timeout: float = Field(default=8.0, gt=0)
    # Total seconds one payer call may take, per operation: ``claims`` (look a batch up and send it),
    # ``status`` (a claim inquiry), ``reports`` (list and fetch the waiting answers, or acknowledge
    # one), ``eligibility`` (a queued check; real-time ones use ``eligibility_timeout``). Past it the
    # call is a transport failure: retried with backoff, counted by the circuit breaker. A worker's
    # job lease is 120 s and a call must end well inside it, hence the upper bound.
    payer_deadline_claims: float = Field(default=60.0, gt=0, le=100)
    payer_deadline_status: float = Field(default=30.0, gt=0, le=100)
    payer_deadline_reports: float = Field(default=60.0, gt=0, le=100)
    payer_deadline_eligibility: float = Field(default=30.0, gt=0, le=100)
    # Seconds between scheduled collections of payer answers (999, 277CA, 835, 271).
    collect_interval: int = Field(default=60, ge=1)
    # Eligibility that acts: booked Appointments are checked this many days ahead (and again on
    # the day); an answer older than ``eligibility_max_age_days`` is refreshed before it is relied
    # on; a work item opens when a coverage has ``eligibility_visits_low`` visits left or fewer.
    eligibility_days_ahead: int = Field(default=3, ge=0, le=60)
    eligibility_max_age_days: int = Field(default=30, ge=1)
    eligibility_visits_low: int = Field(default=3, ge=0)
    # Consecutive transport failures (timeouts, 5xx, resets) that open a payer's circuit, and the
    # first pause in seconds before one probe call; each failed probe doubles it, up to the max.
    circuit_failures: int = Field(default=5, ge=1)
    circuit_cooldown: float = Field(default=30.0, gt=0)
    circuit_cooldown_max: float = Field(default=900.0, gt=0)

    def payer_deadline(self, operation: str) -> float:
        """The total deadline of one payer call of ``operation`` (see ``payer_deadline_*``)."""
        return float(getattr(self, f"payer_deadline_{operation}"))

    @property
    def fhir_base(self) -> str:
        """Absolute FHIR base URL (no trailing slash) used in links and Location headers."""
        return self.public_url.rstrip("/") + "/fhir"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
