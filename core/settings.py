"""One typed settings object, read from ``LEANOPS_*`` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import InvalidInput

if TYPE_CHECKING:
    from core.accounts.oidc import Provider as OidcProvider
    from core.platform.registry_port import RegistryPort
    from core.platform.storage import LocalStore, S3Store
    from core.policy import Policies


class Settings(BaseSettings):
    """Every setting of the product; see design.md for the contract."""

    model_config = SettingsConfigDict(env_prefix="LEANOPS_", extra="ignore", frozen=True)

    home: Path = Path("./.leanops")
    db_url: str = ""
    mlflow_uri: str = ""
    artifacts: str = ""
    scheduler: Literal["embedded", "external", "off"] = "embedded"
    admin_user: str = "admin"
    admin_password: SecretStr | None = None
    api_url: str = "http://127.0.0.1:8000"

    session_idle_minutes: int = Field(30, ge=1, le=24 * 60)
    # a browser session ends this long after login, however active (issue 15; idle expiry: the line above)
    session_max_hours: int = Field(12, ge=1, le=24 * 90)
    login_max_failures: int = Field(5, ge=1, le=100)
    login_lockout_seconds: int = Field(300, ge=1)
    job_heartbeat_seconds: float = Field(5.0, gt=0)
    job_stale_seconds: float = Field(30.0, gt=0)
    queue_poll_seconds: float = Field(2.0, gt=0)
    max_upload_mb: int = Field(200, ge=1)

    # serving API (issue 6)
    serving_batch_limit: int = Field(10_000, ge=1, le=1_000_000)  # records in one predict request
    serving_max_microbatch: int = Field(64, ge=1, le=100_000)  # records predicted together in one call
    serving_window_ms: float = Field(2.0, ge=0, le=1000)  # how long a micro-batch waits for company
    serving_reload_seconds: float = Field(2.0, gt=0, le=3600)  # how often the served aliases are checked
    serving_split_threads: int = Field(1, ge=1, le=64)  # a batch of 4,000+ records is split across this many threads
    api_token_cache_seconds: float = Field(5.0, ge=0, le=300)  # a revoked token stops working within this
    prediction_log_enabled: bool = True  # off only to measure what logging costs
    prediction_log_queue: int = Field(50_000, ge=100)  # rows waiting for the writer before requests wait
    prediction_log_wait_seconds: float = Field(30.0, gt=0)  # a request waits this long for room, then 503
    prediction_retention_days: int = Field(183, ge=1)  # EU AI Act Art. 19: logs kept at least six months
    # issue 17: a prediction is acknowledged once its record is in this process's journal segment: fsynced
    # ("fsync", one sync shared by all requests waiting) or only written to the OS ("batch": survives a killed
    # process, a machine crash may lose the last ~0.2 s)
    prediction_log_durability: Literal["fsync", "batch"] = "fsync"
    drift_report_sample_rows: int = Field(50_000, ge=100)  # rows per side in the Evidently drift report

    # grown-up deployments (issue 9): S3-compatible artifact store, Dask cluster for searches
    s3_endpoint_url: str = ""  # e.g. http://minio:9000; empty: AWS itself
    s3_access_key_id: str = ""  # empty: boto3's usual chain (AWS_* variables, ~/.aws, instance role)
    s3_secret_access_key: SecretStr | None = None
    s3_region: str = ""
    dask_address: str = ""  # e.g. tcp://dask-scheduler:8786; empty: searches run in this process
    # batch scoring's write-enabled SQL destinations (separate from the read-only sources): a JSON object
    # {"NAME": "postgresql+psycopg://…"}; a policy names one as batch.destination "table:NAME/TABLE"
    batch_destinations: SecretStr | None = None

    # alerts (issue 7)
    alert_timeout_seconds: float = Field(5.0, gt=0, le=120)  # per delivery attempt
    alert_retries: int = Field(3, ge=1, le=10)  # attempts per channel
    alert_backoff_seconds: float = Field(0.5, ge=0, le=60)  # wait before the 2nd attempt; doubles after
    # alert URLs (issue 14): hosts, addresses or networks (comma-separated: "localhost,127.0.0.1,10.0.0.0/8")
    # an alert may go to although they are loopback, link-local, cloud-metadata, unspecified or multicast
    alert_allowed_hosts: str = ""

    # secrets at rest (issue 14): the Fernet key(s) sealing source URLs and alert-channel secrets, the first
    # sealing, all unsealing (comma-separated); unset: the workspace file secret.key that `init` creates
    secret_key: SecretStr | None = None

    # signed audit checkpoints (issue 15): the Ed25519 private key (base64 of its 32 raw bytes) signing the
    # chain's head; unset: the workspace file audit.key that `init` creates. A checkpoint is written every
    # audit_checkpoint_events events or every hour (the audit.checkpoint job), and by `cli.py audit checkpoint`
    audit_key: SecretStr | None = None
    audit_checkpoint_events: int = Field(1000, ge=1)
    # the checkpoint count and newest hash kept where a DB admin cannot roll them back (issue 27,
    # core/audit_anchor.py): s3://bucket/prefix of a bucket created with Object Lock; empty: no anchor
    audit_anchor: str = Field("", pattern=r"^(s3://[a-z0-9][a-z0-9.\-]{1,62}(/.*)?)?$")
    audit_anchor_retention_days: int = Field(2555, ge=1)

    # the API's trust boundary (issue 14): the largest predict body; None: 2 KB a record of
    # serving_batch_limit, at least 8 MB, never over max_upload_mb (see api/boundary.py)
    predict_max_mb: int | None = Field(None, ge=1, le=4096)
    # /docs, /redoc and /openapi.json need a token unless this opens them (a browser sends no bearer header)
    api_docs_public: bool = False

    # table limits (issue 14): a dataset upload or drift batch over these is refused before its data is read
    max_table_rows: int = Field(10_000_000, ge=1)
    max_table_columns: int = Field(2_000, ge=1)
    max_table_mb: int = Field(4096, ge=1)  # the table's data once read (uncompressed), not the file's size

    # single sign-on with an OpenID Connect provider (issue 15; core/accounts/oidc.py, docs/deployment.md): on when
    # oidc_issuer is set. Who may sign in: an address in oidc_allowed_domains ("example.com,example.org", "*":
    # any verified address) or a member of oidc_allowed_groups (read from the oidc_groups_claim claim); one of
    # the two is required. oidc_role_map ("leanops-admins=admin,ml=scientist") gives a new user the highest role
    # its groups map to, else viewer. oidc_redirect_url: the callback URL registered at the provider, when the
    # dashboard cannot tell its own public address (empty: <the address the browser used>/auth/oidc/callback)
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: SecretStr | None = None
    oidc_provider_name: str = Field("SSO", min_length=1, max_length=40)
    oidc_allowed_domains: str = ""
    oidc_allowed_groups: str = ""
    oidc_groups_claim: str = "groups"
    oidc_role_map: str = ""
    oidc_scopes: str = "openid email profile"
    oidc_redirect_url: str = ""

    # MLflow's own web UI (issue 19), e.g. http://mlflow.internal:5000: the Training page links each run to
    # {mlflow_ui_url}/#/experiments/{experiment}/runs/{run}; empty: no link
    mlflow_ui_url: str = ""

    @field_validator("mlflow_ui_url")
    @classmethod
    def _check_mlflow_ui_url(cls, value: str) -> str:
        if not value:
            return value
        from urllib.parse import urlsplit

        parts = urlsplit(value.strip())
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("expected an http:// or https:// address such as http://mlflow.internal:5000")
        if parts.username or parts.password:  # the link is shown to every user: it must not carry a password
            raise ValueError("the address must not hold a user name or password (it is shown to every user)")
        if parts.query or parts.fragment:
            raise ValueError("the address must end at its path: the run's part (#/experiments/…) is added to it")
        return value.strip().rstrip("/")

    @field_validator("db_url", "mlflow_uri")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not value:
            return value
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(value)
        except ArgumentError as exc:
            raise ValueError(f"not a database URL ({exc}); expected e.g. sqlite:///path/leanops.db "
                             "or postgresql+psycopg://user@host/db") from None
        if url.get_backend_name() not in {"sqlite", "postgresql"}:
            raise ValueError(f"backend {url.get_backend_name()!r} is not supported; use sqlite or postgresql")
        return value

    @field_validator("alert_allowed_hosts")
    @classmethod
    def _check_allowed_hosts(cls, value: str) -> str:
        from core.alerts.addresses import parse_allowed

        parse_allowed(value)  # raises ValueError naming the bad entry
        return value

    @field_validator("oidc_issuer")
    @classmethod
    def _check_oidc_issuer(cls, value: str) -> str:
        from core.accounts.oidc import check_issuer

        return check_issuer(value) if value else value

    @field_validator("oidc_role_map")
    @classmethod
    def _check_oidc_role_map(cls, value: str) -> str:
        from core.accounts.oidc import parse_role_map

        parse_role_map(value)  # raises ValueError naming the bad entry
        return value

    @model_validator(mode="after")
    def _check_oidc(self) -> Settings:
        if not self.oidc_issuer:
            return self
        if not self.oidc_client_id or self.oidc_client_secret is None:
            raise ValueError("LEANOPS_OIDC_ISSUER is set, so LEANOPS_OIDC_CLIENT_ID and LEANOPS_OIDC_CLIENT_SECRET "
                             "are needed too")
        if not self.oidc_allowed_domains.strip() and not self.oidc_allowed_groups.strip():
            raise ValueError("LEANOPS_OIDC_ISSUER is set but neither LEANOPS_OIDC_ALLOWED_DOMAINS nor "
                             "LEANOPS_OIDC_ALLOWED_GROUPS says who may sign in (use '*' as the domain to allow "
                             "every address the provider has verified)")
        if "openid" not in self.oidc_scopes.split():
            raise ValueError(f"LEANOPS_OIDC_SCOPES {self.oidc_scopes!r} must include 'openid'")
        return self

    def oidc_provider(self) -> OidcProvider | None:
        """The single sign-on provider, or None when SSO is off (no LEANOPS_OIDC_ISSUER)."""
        if not self.oidc_issuer or self.oidc_client_secret is None:
            return None
        from core.accounts.oidc import Provider, parse_list, parse_role_map

        return Provider(issuer=self.oidc_issuer, client_id=self.oidc_client_id,
                        client_secret=self.oidc_client_secret.get_secret_value(), name=self.oidc_provider_name,
                        allowed_domains=frozenset(d.lower() for d in parse_list(self.oidc_allowed_domains)),
                        allowed_groups=parse_list(self.oidc_allowed_groups), groups_claim=self.oidc_groups_claim,
                        role_map=parse_role_map(self.oidc_role_map), scopes=self.oidc_scopes)

    @field_validator("artifacts")
    @classmethod
    def _check_artifacts(cls, value: str) -> str:
        if "://" in value and not value.startswith("s3://"):
            raise ValueError("only a local folder or s3://bucket/prefix is supported")
        if value.startswith("s3://") and not value.removeprefix("s3://").split("/")[0]:
            raise ValueError("an S3 artifact root needs a bucket: s3://bucket/prefix")
        return value.rstrip("/") if value.startswith("s3://") else value

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        home = self.home.expanduser().resolve()
        object.__setattr__(self, "home", home)
        if not self.db_url:
            object.__setattr__(self, "db_url", f"sqlite:///{home / 'leanops.db'}")
        if not self.mlflow_uri:
            object.__setattr__(self, "mlflow_uri", f"sqlite:///{home / 'mlflow.db'}")
        if not self.artifacts:
            object.__setattr__(self, "artifacts", str(home / "artifacts"))
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.db_url.startswith("sqlite")

    @property
    def on_s3(self) -> bool:
        return self.artifacts.startswith("s3://")

    @property
    def policies(self) -> Policies:
        """The workspace's policies.yaml, cached until the file changes (one reader per file and process)."""
        from core.policy import POLICY_FILE, Policies

        return Policies.at(self.home / POLICY_FILE)

    @property
    def registry(self) -> RegistryPort:
        """The workspace's MLflow registry (aliases as projected, versions, their files)."""
        from core.platform.mlflow_store import MlflowStore
        from core.platform.registry_port import RegistryPort

        return RegistryPort(MlflowStore(uri=self.mlflow_uri, artifacts=str(self.artifacts)))

    @property
    def data_store(self) -> LocalStore | S3Store:  # storage is imported lazily: boto3 is heavy
        """Where dataset files and reports live: the workspace folder, or the S3 artifact root."""
        from core.platform.storage import open_store

        return open_store(self)


def get_settings(**overrides: Any) -> Settings:
    """Read the settings from the environment; a bad value names its variable."""
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            msg = err["msg"].removeprefix("Value error, ")
            if not err["loc"]:  # a check across settings names its variables itself; its input holds secrets
                problems.append(msg)
                continue
            field = str(err["loc"][0])
            problems.append(f"LEANOPS_{field.upper()}: {msg} (got {_masked(err.get('input'))!r})")
        raise InvalidInput("; ".join(problems)) from None
    if settings.on_s3:
        export_s3_environment(settings)
    return settings


def _masked(value: Any) -> Any:
    """A refused URL as a message may show it: any password in it replaced by ***."""
    if isinstance(value, str) and "://" in value:
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(value)
            if parts.password is not None:
                return value.replace(f":{parts.password}@", ":***@", 1)
        except ValueError:
            return "(an unreadable address)"
    return value


def quiet_mlflow_progress() -> None:
    """MLflow's artifact downloads draw a progress bar on stderr unless told otherwise (environment only);
    a command's stderr is for its errors."""
    import os

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def export_s3_environment(settings: Settings) -> None:
    """Hand the S3 settings to MLflow's artifact store, which reads only environment variables
    (``MLFLOW_S3_ENDPOINT_URL``, ``AWS_*``). Unset LeanOps values leave boto3's own chain alone."""
    import os

    pairs = {"MLFLOW_S3_ENDPOINT_URL": settings.s3_endpoint_url, "AWS_ACCESS_KEY_ID": settings.s3_access_key_id,
             "AWS_SECRET_ACCESS_KEY": (settings.s3_secret_access_key.get_secret_value()
                                       if settings.s3_secret_access_key else ""),
             "AWS_DEFAULT_REGION": settings.s3_region}
    for name, value in pairs.items():
        if value:
            os.environ[name] = value
