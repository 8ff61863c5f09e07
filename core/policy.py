"""Promotion policy as code: a validated ``policies.yaml`` and pure gate evaluation.

Everything here takes plain values and returns decisions with their reasons, so gates are
tested with tables and explained the same way on the page, in the CLI and in the report.
"""

from __future__ import annotations

import copy
import difflib
import re
import threading
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator, ValidationError, model_validator
from sqlalchemy.orm import Session

from core import audit
from core.accounts.auth import require
from core.actors import Actor, system_actor
from core.errors import InvalidInput
from core.platform import job_queue

if TYPE_CHECKING:
    from pydantic_core import ErrorDetails

DEFAULT_POLICY_YAML = """\
# LeanOps promotion policy. Every model gets `default`; `models.<name>` overrides parts of it.
# Gates are checked when a version is registered and again at promotion; a version is promoted
# to `champion` only when every gate passes (or an admin forces it, which is flagged everywhere).
default:
  # Absolute thresholds on holdout metrics, per task. Operators: >=, >, <=, <.
  metrics:
    classification:
      f1: ">= 0.85"        # macro F1
    regression:
      r2: ">= 0.5"
  # A new champion must beat the current one on the primary metric (f1 or r2) by this share.
  improvement:
    min_relative: 0.02     # 2 %
  # Fairness on a sensitive column (named per model below); while column is null, the sensitive column
  # named at training (--sensitive) is gated, and with neither the report says "fairness not gated".
  fairness:
    column: null
    demographic_parity_ratio_min: 0.8
  # The training data's quality certificate must have passed, and be no older than this.
  certificate:
    require_passed: true
    max_age_days: 30
    # A dataset version whose row count changed beyond its schema's max_row_change: warn (shown on the
    # version, the certificate still passes) or check (the certificate fails). Read from `default`.
    row_change: warn
  # Human approval before promotion; approvers must differ from whoever trained the version.
  approval:
    required: false
    approvers: 1
  # What an automatic retrain does with a version that passes every gate: promote it, or
  # give it the `challenger` alias and notify approvers.
  auto_promote: false
  # Drift checks compare live inputs with the reference statistics stored at training time.
  # Small samples (up to `large_sample_rows` rows) use tests (KS for numbers, chi-squared for
  # categories: drift when p < p_value); larger ones use distances (normalised Wasserstein for
  # numbers, Jensen-Shannon for categories: drift above the threshold), so a million rows from
  # the same distribution do not raise alarms. PSI is reported for every column.
  drift:
    large_sample_rows: 1000
    p_value: 0.05
    wasserstein: 0.1
    jensenshannon: 0.1
    psi: 0.2
    # A column flagged by its test (small samples) also needs a shift big enough to matter:
    # normalised Wasserstein (shift in reference standard deviations) at least floor_wasserstein
    # for KS, Jensen-Shannon at least floor_jensenshannon for chi-squared. The tests' p-values are
    # corrected across columns (benjamini-hochberg; none tests each column alone), so unchanged data
    # flags a column in at most p_value of checks however many columns there are.
    floor_wasserstein: 0.05
    floor_jensenshannon: 0.05
    correction: benjamini-hochberg
    # The data counts as drifted (the one verdict: exit code, page, alerts, retrain) when any of:
    # (a) the model's outputs drifted (predicted probabilities / values, on a random sample);
    # (b) a drifted column is among the model's `top_k` most important (permutation importance
    #     from training), or the drifted columns together carry `importance_share` of it;
    # (c) at least `share` of the columns drift.
    share: 0.5             # (c)
    top_k: 3               # (b); 0 turns the top-k rule off
    importance_share: 0.10 # (b)
    prediction_drift: true # (a); false: outputs are reported but do not decide
    schedule: "0 6 * * *"  # the scheduled check (cron, UTC); null turns it off
    window_hours: 24       # ... over the predictions logged in this window
    min_rows: 30           # fewer logged rows than this: the check says so instead of guessing
  # Live performance from feedback labels joined with logged predictions.
  performance:
    floor:
      classification:
        f1: ">= 0.8"
      regression:
        r2: ">= 0.4"
    window: 500            # the most recent labelled predictions
    min_labels: 50         # fewer labels than this: no verdict yet
    # Labels arrive late: every drift check also estimates performance without them (CBPE for
    # classifiers, DLE for regressors; docs/monitoring.md says when the estimate is wrong). With
    # use_estimate, an estimate below the floor alerts, may retrain and may roll back like live
    # performance does (audited with the estimate).
    use_estimate: false
  # What starts a retrain of the champion's configuration on the latest dataset version.
  retrain:
    on_drift: true
    schedule: null         # e.g. "0 3 * * 1" for weekly
    on_data_growth: 0.10   # a new dataset version with at least 10 % more rows; null turns it off
    on_upload: true        # a dataset version uploaded through the API
    # The dataset version a retrain uses: null = the newest version whose certificate passed and that
    # is not deprecated (what every default means); a number pins that version of the champion's dataset.
    dataset_version: null
  # Roll back a newly promoted champion whose live performance falls below the floor or below
  # its predecessor's within this many hours of the promotion. `auto`: true rolls back at once;
  # approve raises a rollback request (and an alert) that an approver approves on the Registry
  # page, and the champion stays until then; false only reports the drop.
  rollback:
    auto: true
    window_hours: 72
  # Who may label (send feedback for) a logged prediction: the token or user that made it, and
  # any actor of at least this role (scientist, approver or admin). Labels drive live
  # performance and so the automatic rollback.
  feedback:
    label_any_request: admin
  # One incident is one alert: the same condition on the same model is not re-sent within this time.
  # Promotions, rollbacks and approval requests are events: always sent, never held back.
  alerts:
    cooldown_minutes: 360
  # Predict requests whose records lack a model column (missing_columns) or carry columns the model
  # does not know (unknown_columns, often a typo): reject (422 naming records[i].column), or, when a
  # team opts in, impute (missing: the model's imputer fills them) / ignore (unknown: dropped); the
  # answer then lists them (imputed_columns, ignored_columns).
  serving:
    missing_columns: reject
    unknown_columns: reject
  # Shadow scoring: the `challenger` also scores a sample of the champion's live requests, off the
  # response path (never returned, never delaying an answer). After `min_labelled` paired labels or
  # `max_days` days, the challenger is promoted when it beats the champion by improvement.min_relative
  # with p < p_value (McNemar on correctness / Wilcoxon on absolute errors), else discarded.
  # decide: promote (through the gates and approvals, as a manual promotion) or alert (propose only).
  shadow:
    enabled: false
    sample: 1.0
    min_labelled: 200
    max_days: 14
    p_value: 0.05
    decide: alert
  # Model risk tier (SR 11-7's inventory, EU AI Act's high-risk class): low, medium or high. The tier sets
  # how often an approver reviews the model (review.interval_months, counted from the last review or,
  # before the first one, from the model's first champion; null: no periodic review). An overdue review
  # is an alert; for a tier listed in review.blocking it also blocks every promotion (gate `review`).
  risk_tier: medium
  review:
    interval_months:
      high: 6
      medium: 12
      low: null
    blocking: [high]
models:
  churn:
    fairness:
      column: gender
"""

PRIMARY = {"classification": "f1", "regression": "r2"}
_RULE = re.compile(r"^\s*(>=|>|<=|<)\s*(-?\d+(\.\d+)?([eE]-?\d+)?)\s*$")


def _check_rule(rule: str) -> str:
    if not _RULE.match(str(rule)):
        raise ValueError(f"rule {rule!r} is not '<op> <number>' with op one of >=, >, <=, <")
    return rule


def _check_cron(expression: str | None) -> str | None:
    # Parsed by APScheduler's trigger parser, as the scheduler will, so a cron it would refuse is refused
    # here, when policies.yaml is saved, with its line (the field's validator puts `schedule` in the path).
    if expression is None:
        return None
    from core.platform.schedules import check_cron

    try:
        check_cron(expression)
    except InvalidInput as exc:
        raise ValueError(str(exc)) from None
    return expression


Rule = Annotated[str, AfterValidator(_check_rule)]
Cron = Annotated[str | None, AfterValidator(_check_cron)]  # five cron fields, UTC; None: off
Task = Literal["classification", "regression"]


def _metrics_default() -> dict[Task, dict[str, str]]:
    return {"classification": {"f1": ">= 0.85"}, "regression": {"r2": ">= 0.5"}}


def _floor_default() -> dict[Task, dict[str, str]]:
    return {"classification": {"f1": ">= 0.8"}, "regression": {"r2": ">= 0.4"}}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Improvement(_Strict):
    min_relative: float = Field(0.02, ge=0, le=10)


class Fairness(_Strict):
    column: str | None = None
    demographic_parity_ratio_min: float = Field(0.8, ge=0, le=1)


class Certificate(_Strict):
    require_passed: bool = True
    max_age_days: int | None = Field(30, ge=1)
    row_change: Literal["warn", "check"] = "warn"


class Approval(_Strict):
    required: bool = False
    approvers: int = Field(1, ge=1, le=10)


class Drift(_Strict):
    large_sample_rows: int = Field(1000, ge=0)
    p_value: float = Field(0.05, gt=0, lt=1)
    wasserstein: float = Field(0.1, gt=0)
    jensenshannon: float = Field(0.1, gt=0, le=1)
    psi: float = Field(0.2, gt=0)
    floor_wasserstein: float = Field(0.05, ge=0)
    floor_jensenshannon: float = Field(0.05, ge=0, le=1)
    correction: Literal["benjamini-hochberg", "none"] = "benjamini-hochberg"
    share: float = Field(0.5, gt=0, le=1)
    top_k: int = Field(3, ge=0, le=1000)
    importance_share: float = Field(0.10, gt=0, le=1)
    prediction_drift: bool = True
    schedule: Cron = "0 6 * * *"
    window_hours: float = Field(24, gt=0)
    min_rows: int = Field(30, ge=1)


class Performance(_Strict):
    floor: dict[Task, dict[str, Rule]] = Field(default_factory=_floor_default)
    window: int = Field(500, ge=10)
    min_labels: int = Field(50, ge=1)
    use_estimate: bool = False


class Retrain(_Strict):
    on_drift: bool = True
    schedule: Cron = None
    on_data_growth: float | None = Field(0.10, ge=0)
    on_upload: bool = True
    dataset_version: int | None = Field(None, ge=1)  # pin the version a retrain uses (None: the default)


APPROVE = "approve"


def _check_auto(value: Any) -> bool | str:
    # bool, not "truthy": YAML's true/false/yes/no arrive as bools, anything else is a mistake
    if isinstance(value, bool) or value == APPROVE:
        return value
    raise ValueError(f"must be true, false or {APPROVE} (an approver confirms each rollback), got {value!r}")


class Rollback(_Strict):
    auto: Annotated[bool | Literal["approve"], PlainValidator(_check_auto)] = True
    window_hours: float = Field(72, gt=0)


class Feedback(_Strict):
    # The least role that may label any request of the model, besides the actor that made it.
    # viewer is not offered: a viewer may not send feedback at all (permission feedback.write).
    label_any_request: Literal["scientist", "approver", "admin"] = "admin"


class Alerts(_Strict):
    cooldown_minutes: float = Field(360, ge=0)


class Serving(_Strict):
    missing_columns: Literal["reject", "impute"] = "reject"
    unknown_columns: Literal["reject", "ignore"] = "reject"


class Shadow(_Strict):
    enabled: bool = False
    sample: float = Field(1.0, ge=0, le=1)  # share of the champion's requests the challenger also scores
    min_labelled: int = Field(200, ge=1)  # paired labels before the decision
    max_days: float = Field(14, gt=0)  # ... or this long after the challenger was set
    p_value: float = Field(0.05, gt=0, lt=1)
    decide: Literal["promote", "alert"] = "alert"


RiskTier = Literal["low", "medium", "high"]
RISK_TIERS: tuple[RiskTier, ...] = ("low", "medium", "high")


def _review_intervals() -> dict[RiskTier, int | None]:
    return {"high": 6, "medium": 12, "low": None}


class Review(_Strict):
    interval_months: dict[RiskTier, Annotated[int, Field(ge=1, le=120)] | None] = Field(
        default_factory=_review_intervals)
    blocking: tuple[RiskTier, ...] = ("high",)


class Batch(_Strict):
    """Scheduled batch scoring of the champion: ``source`` (``dataset:NAME`` = its trusted default version,
    ``sql:SOURCE:SELECT …`` on a configured read-only source, ``folder:/path`` = the newest CSV/Parquet file
    there, ``s3://bucket/prefix/`` = every Parquet object there) scored into ``destination`` (``folder:/path``,
    ``table:NAME/TABLE`` on a write-enabled destination of LEANOPS_BATCH_DESTINATIONS, or ``s3://bucket/prefix/``
    for an S3 source: ``core.serving.batch_parts``, on the Dask cluster when LEANOPS_DASK_ADDRESS is set) on the
    cron ``schedule`` (UTC; null: off)."""

    schedule: Cron = None
    source: str | None = Field(None, max_length=4000, pattern=r"^((dataset|sql|folder):.+|s3://[^/]+/.*)")
    destination: str | None = Field(None, max_length=1000, pattern=r"^((folder|table):.+|s3://[^/]+/.*/)$")
    id_column: str | None = None
    explain: bool = False

    @model_validator(mode="after")
    def _complete(self) -> Batch:
        if self.schedule and not (self.source and self.destination):
            raise ValueError("batch.schedule needs batch.source and batch.destination")
        on_s3 = [str(x).startswith("s3://") for x in (self.source, self.destination) if x]
        if any(on_s3) and not (len(on_s3) == 2 and all(on_s3)):
            raise ValueError("an s3:// batch.source is scored into an s3://bucket/prefix/ batch.destination, and "
                             "only an S3 source into one")
        return self


class ModelPolicy(_Strict):
    metrics: dict[Task, dict[str, Rule]] = Field(default_factory=_metrics_default)
    improvement: Improvement = Improvement()
    fairness: Fairness = Fairness()
    certificate: Certificate = Certificate()
    approval: Approval = Approval()
    auto_promote: bool = False
    drift: Drift = Drift()
    performance: Performance = Performance()
    retrain: Retrain = Retrain()
    rollback: Rollback = Rollback()
    feedback: Feedback = Feedback()
    alerts: Alerts = Alerts()
    serving: Serving = Serving()
    shadow: Shadow = Shadow()
    batch: Batch = Batch()
    risk_tier: RiskTier = "medium"
    review: Review = Review()

    @model_validator(mode="after")
    def _consistent(self) -> ModelPolicy:
        if self.auto_promote and self.approval.required:
            raise ValueError("auto_promote cannot be true while approval.required is true: "
                             "a retrained version has to wait for its approvers")
        return self


class PolicyFile(_Strict):
    default: ModelPolicy = ModelPolicy()
    models: dict[str, dict[str, Any]] = Field(default_factory=dict)


def parse(text: str) -> PolicyFile:
    """Validate a policies.yaml text; errors name the line and the rule."""
    import yaml

    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        raise InvalidInput(f"policies.yaml {where}not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict):
        raise InvalidInput("policies.yaml must be a mapping with `default:` and `models:`")
    try:
        policy = PolicyFile.model_validate(data)
        for name, override in policy.models.items():
            _merged(policy.default, override or {}, name)
    except ValidationError as exc:
        raise InvalidInput("; ".join(_describe(err, node) for err in exc.errors())) from None
    except _OverrideError as exc:
        raise InvalidInput(f"policies.yaml {_line_of(node, exc.path)}models.{exc.name}: {exc.detail}") from None
    return policy


class _OverrideError(Exception):
    def __init__(self, name: str, path: tuple, detail: str) -> None:
        super().__init__(detail)
        self.name, self.path, self.detail = name, path, detail


def _merged(default: ModelPolicy, override: dict[str, Any], name: str) -> ModelPolicy:
    merged = _deep_merge(default.model_dump(), override)
    try:
        return ModelPolicy.model_validate(merged)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise _OverrideError(name, ("models", name, *err["loc"]),
                             f"{'.'.join(map(str, err['loc']))}: {err['msg'].removeprefix('Value error, ')}") from None


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        out[key] = _deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) \
            else value
    return out


def _describe(err: ErrorDetails, node: Any) -> str:
    path = ".".join(str(p) for p in err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    return f"policies.yaml {_line_of(node, err['loc'])}{path}: {msg}"


def _line_of(node: Any, path: tuple) -> str:
    """'line N: ' for the deepest YAML key along ``path`` that exists."""
    import yaml

    line = None
    for key in path:
        if not isinstance(node, yaml.MappingNode):
            break
        match = next(((k, v) for k, v in node.value if k.value == str(key)), None)
        if match is None:
            break
        line, node = match[0].start_mark.line + 1, match[1]
    return f"line {line}: " if line else ""


POLICY_FILE = "policies.yaml"


class Policies:
    """The workspace's ``policies.yaml``, parsed once and again only when the file changes.

    One per file and process (``Policies.at``), so every flow of a command or a request reads the file
    at most once while it stays the same; a change (its size, modification time or inode) is seen at the
    next read. A missing file reads as the default policy.
    """

    _by_path: dict[Path, Policies] = {}
    _by_path_lock = threading.Lock()

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._text: str | None = None
        self._file: PolicyFile | None = None
        self._rules: dict[str, ModelPolicy] = {}

    @classmethod
    def at(cls, path: Path) -> Policies:
        with cls._by_path_lock:
            found = cls._by_path.get(path)
            if found is None:
                found = cls._by_path[path] = cls(path)
            return found

    def _fresh(self) -> None:
        try:
            st = self.path.stat()
            stamp: tuple[int, int, int] | None = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            stamp = None
        if self._text is not None and stamp == self._stamp:
            return
        text = self.path.read_text() if stamp is not None else DEFAULT_POLICY_YAML
        self._stamp, self._text, self._file, self._rules = stamp, text, None, {}

    def text(self) -> str:
        with self._lock:
            self._fresh()
            assert self._text is not None
            return self._text

    def file(self) -> PolicyFile:
        with self._lock:
            self._fresh()
            if self._file is None:
                assert self._text is not None
                self._file = parse(self._text)
            return self._file

    def rules_for(self, model: str) -> ModelPolicy:
        """A model's effective policy: ``default`` with its ``models.<name>`` overrides."""
        file = self.file()
        with self._lock:
            found = self._rules.get(model)
            if found is None:
                found = self._rules[model] = for_model(file, model)
            return found

    def write_default(self) -> None:
        if not self.path.exists():
            self.path.write_text(DEFAULT_POLICY_YAML)

    def save(self, session: Session, *, actor: Actor, text: str) -> str:
        """Validate and store a new policies.yaml; the audit event carries the diff. Returns the diff."""
        require(session, actor, "policies.manage", POLICY_FILE)
        parse(text)
        old = self.text()
        diff = "".join(difflib.unified_diff(old.splitlines(True), text.splitlines(True), "before", "after"))
        if not diff:
            return ""
        audit.record(session, actor, "policy.changed", POLICY_FILE, {"diff": diff})
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(self.path)  # replaced only once the audit row is flushed: a refused change touches nothing
        # The drift/retrain schedules follow the new policy: a job queued in this same transaction.
        job_queue.enqueue(session, actor=system_actor("policy"), kind="schedules.sync", params={})
        # ... and so do the stored gate results of the versions someone may act on (no stale verdict shown)
        job_queue.enqueue(session, actor=system_actor("policy"), kind="gates.refresh", params={})
        return diff


def with_override(text: str, model: str, section: str, values: dict[str, Any]) -> str:
    """``text`` with ``models.<model>.<section>`` set to ``values`` (the rest of the file kept verbatim).

    Only the top-level ``models:`` block is rewritten (its comments are lost); ``default:`` and its
    comments stay as they were. The result is validated like any policies.yaml.
    """
    import yaml

    data = parse(text).models
    models = copy.deepcopy(data)
    models.setdefault(model, {})
    models[model] = dict(models[model] or {})
    models[model][section] = {**(models[model].get(section) or {}), **values}
    found = re.search(r"(?m)^models:", text)
    head = text[:found.start()] if found else text.rstrip("\n") + "\n"
    result = head + yaml.safe_dump({"models": models}, sort_keys=False, default_flow_style=False)
    parse(result)
    return result


def for_model(policy: PolicyFile, model: str) -> ModelPolicy:
    return _merged(policy.default, policy.models.get(model) or {}, model)


# -- evaluation ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Check:
    name: str
    observed: Any
    required: Any
    passed: bool
    detail: str = ""


@dataclass(frozen=True)
class GateResult:
    passed: bool
    checks: tuple[Check, ...]

    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "checks": [asdict(c) for c in self.checks]}


def compare(value: float, rule: str) -> bool:
    match = _RULE.match(rule)
    assert match is not None, f"rule {rule!r} was not validated"  # policy rules are checked by _check_rule
    op, number = match.group(1, 2)
    limit = float(number)
    return {">=": value >= limit, ">": value > limit, "<=": value <= limit, "<": value < limit}[op]


def evaluate(policy: ModelPolicy, *, task: str, metrics: dict[str, float], champion_metrics: dict[str, float] | None,
             fairness: dict[str, Any] | None, certificate_passed: bool | None, certificate_at: datetime | None,
             now: datetime, trainer: str, approvals: tuple[str, ...] = (), include_approval: bool = True
             ) -> GateResult:
    """Every gate of ``policy`` for one model version, each with observed, required and verdict.

    ``fairness`` maps column → {"demographic_parity_ratio": float, ...} as training measured it.
    ``approvals`` are the usernames that approved; the trainer's own approval does not count.
    """
    checks: list[Check] = []
    for metric, rule in policy.metrics.get(cast(Task, task), {}).items():  # an unknown task has no rules
        value = metrics.get(metric)
        checks.append(Check(f"metric {metric}", value, rule, value is not None and compare(float(value), rule),
                            "" if value is not None else f"the run has no metric {metric!r}"))
    primary = PRIMARY[task]
    if champion_metrics is not None and primary in champion_metrics and primary in metrics:
        base, new = float(champion_metrics[primary]), float(metrics[primary])
        step = policy.improvement.min_relative
        need = base * (1 + step) if base >= 0 else base * (1 - step)
        gain = (new - base) / abs(base) if base else float("inf")
        checks.append(Check(f"improvement on {primary} over champion", round(gain, 4),
                            f">= {policy.improvement.min_relative:g}", new >= need,
                            f"{new:.4f} vs champion {base:.4f}"))
    column = policy.fairness.column
    if column:
        ratio = ((fairness or {}).get(column) or {}).get("demographic_parity_ratio")
        checks.append(Check(f"fairness demographic parity ratio on {column}", ratio,
                            f">= {policy.fairness.demographic_parity_ratio_min:g}",
                            ratio is not None and ratio >= policy.fairness.demographic_parity_ratio_min,
                            "" if ratio is not None else f"training measured no fairness on {column!r} "
                                                         "(train with it as the sensitive column)"))
    if policy.certificate.require_passed:
        checks.append(Check("data certificate passed", certificate_passed, True, bool(certificate_passed)))
    if policy.certificate.max_age_days and certificate_at is not None:
        age = now - certificate_at
        checks.append(Check("data certificate age (days)", round(age.total_seconds() / 86400, 1),
                            f"<= {policy.certificate.max_age_days}",
                            age <= timedelta(days=policy.certificate.max_age_days)))
    if include_approval and policy.approval.required:
        valid = sorted({a for a in approvals if a != trainer})
        checks.append(Check("approvals", len(valid), f">= {policy.approval.approvers}",
                            len(valid) >= policy.approval.approvers,
                            f"approved by {', '.join(valid) or 'nobody yet'}; the trainer ({trainer}) cannot approve"))
    return GateResult(all(c.passed for c in checks), tuple(checks))
