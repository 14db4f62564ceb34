"""Generate the Captain Data alert rules, the PrometheusRule and the runbooks from ``exporter/statuses.py``.

Usage::

    python deploy/generate.py            # rewrite the committed files
    python deploy/generate.py --check    # exit 1 (and show a diff) if a committed file is out of date
    python deploy/generate.py --output-dir /tmp/rules --recent-window 10m --warning-for 0s
                                         # a variant with other knobs, written elsewhere

Every knob (the job selector, thresholds, windows and ``for:`` durations, the runbook base URL) is a field of
:class:`Knobs` and a command-line flag of the same name; ``docs/alerts.md`` documents them. The status
knowledge (meaning, recommended action, steps, API calls) comes from :mod:`exporter.statuses`, so the landing
page, the alert annotations and the runbooks always say the same thing.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # `python deploy/generate.py` from a checkout, without installing the package
    sys.path.insert(0, str(REPO))

from exporter import statuses as st  # noqa: E402
from exporter.durations import parse_duration as seconds  # noqa: E402

RULES_FILE = "captaindata-alerts.rules.yml"
PROMETHEUS_RULE_FILE = "prometheusrule.yaml"
RUNBOOKS_FILE = "runbooks.md"

#: Where the committed files live, relative to the repository root.
COMMITTED: dict[str, Path] = {
    RULES_FILE: Path("deploy/prometheus") / RULES_FILE,
    PROMETHEUS_RULE_FILE: Path("deploy/kubernetes") / PROMETHEUS_RULE_FILE,
    RUNBOOKS_FILE: Path("docs") / RUNBOOKS_FILE,
}

DEFAULT_RUNBOOK_BASE_URL = (
    "https://github.com/captaindata-exporter/captaindata-exporter/blob/main/docs/runbooks.md"
)


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


def _knob(default: str | int, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Knobs:
    """The tunable parts of the rules. Each field is also a ``--flag`` (underscores become dashes)."""

    selector: str = _knob(
        'job="captaindata-exporter"', "PromQL label matchers selecting the exporter's series and its `up`"
    )
    runbook_base_url: str = _knob(
        DEFAULT_RUNBOOK_BASE_URL, "URL of docs/runbooks.md; each alert links to its section (#alertname)"
    )
    scrape_gap: str = _knob(
        "5m", "lookback that bridges missed scrapes (last_over_time/max_over_time); above 2 scrape intervals"
    )
    running_too_long: str = _knob("6h", "age of the oldest Running run that counts as too long")
    running_too_long_for: str = _knob("15m", "for: of CaptainDataRunRunningTooLong")
    recent_window: str = _knob(
        "24h", "a warning/shutdown run alerts for at most this long after it happened (never last month's)"
    )
    warning_for: str = _knob("5m", "for: of CaptainDataRunWarning")
    shutdown_for: str = _knob("5m", "for: of CaptainDataRunShutdown")
    shutdowns_persisting_count: int = _knob(3, "runs entering shutdown within the window that page")
    shutdowns_persisting_window: str = _knob("6h", "window of CaptainDataRunShutdownsPersisting")
    shutdowns_persisting_for: str = _knob("0s", "for: of CaptainDataRunShutdownsPersisting")
    paused_for: str = _knob("15m", "for: of CaptainDataRunPaused")
    stopped_window: str = _knob("1h", "CaptainDataRunStopped reports stops within this window")
    rate_limited_window: str = _knob("10m", "429s are counted over this window")
    rate_limited_for: str = _knob("20m", "for: of CaptainDataRateLimited (429s must keep arriving this long)")
    poll_failing_for: str = _knob("10m", "for: of CaptainDataExporterPollFailing")
    poll_errors_window: str = _knob(
        "15m", "window of captaindata_poll_errors_total that tells why polls fail (401/403, 429)"
    )
    poll_stale_threshold: str = _knob("15m", "age of the last successful poll that counts as stale")
    poll_stale_for: str = _knob("5m", "for: of CaptainDataExporterPollStale")
    unauthorized_for: str = _knob("5m", "for: of CaptainDataExporterUnauthorized")
    exporter_down_for: str = _knob("5m", "for: of CaptainDataExporterDown")

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in {"selector", "runbook_base_url"}:
                if not value or "`" in value:
                    raise ValueError(f"{f.name} must be non-empty and free of backquotes")
            elif f.type in {"int", int}:
                if int(value) < 1:
                    raise ValueError(f"{f.name} must be at least 1")
            else:
                seconds(value)
        if seconds(self.scrape_gap) <= 0:
            raise ValueError("scrape_gap must be positive")


KNOB_FIELDS = tuple(dataclasses.fields(Knobs))

# --- PromQL and template building blocks --------------------------------------------------------------

RUN_LABELS = "workspace, workflow_uid, workflow"
NEEDS_ACTION_LABELS = "workspace, workflow_uid, workflow, status, run_uid, run_name"

WS = "{{ $labels.workspace }}"
WF = "{{ $labels.workflow }} ({{ $labels.workflow_uid }})"
RUN = "{{ $labels.run_name }} ({{ $labels.run_uid }})"
INSTANCE = "{{ $labels.instance }}"
COUNT = '{{ $value | printf "%.0f" }}'


def sel(knobs: Knobs, metric: str, *matchers: str) -> str:
    return f"{metric}{{{', '.join((knobs.selector, *matchers))}}}"


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith(".") else text + "."


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


# --- The model: rules with their runbook sections -----------------------------------------------------


@dataclass(frozen=True)
class Runbook:
    meaning: str
    causes: tuple[str, ...]
    steps: tuple[str, ...]
    confirm: str
    escalate: str
    design: str
    api_calls: tuple[st.ApiCall, ...] = ()


@dataclass(frozen=True)
class Alert:
    name: str
    group: str
    expr: str
    for_: str
    severity: str
    summary: str
    description: str
    action: str
    runbook: Runbook
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)

    def rule(self, knobs: Knobs) -> dict[str, Any]:
        rule: dict[str, Any] = {"alert": self.name, "expr": self.expr}
        if seconds(self.for_) > 0:
            rule["for"] = self.for_
        rule["labels"] = {"severity": self.severity, **self.labels}
        rule["annotations"] = {
            "summary": self.summary,
            "description": self.description,
            "action": self.action,
            **self.annotations,
            "runbook_url": runbook_url(knobs, self.name),
        }
        return rule


@dataclass(frozen=True)
class Recording:
    record: str
    expr: str
    help: str


def runbook_url(knobs: Knobs, alert: str) -> str:
    return f"{knobs.runbook_base_url}#{alert.lower()}"


GROUP_RUNS = "captaindata-runs"
GROUP_EXPORTER = "captaindata-exporter"
GROUP_RECORDING = "captaindata-recording"


def recording_rules(knobs: Knobs) -> list[Recording]:
    rules: list[Recording] = []
    for window in ("1h", "1d"):
        changes = f"workflow:captaindata_run_status_changes:increase{window}"
        rules.append(
            Recording(
                record=changes,
                expr=(
                    f"max by ({RUN_LABELS}, status) (\n"
                    f"  increase({sel(knobs, 'captaindata_run_status_changes_total')}[{window}])\n"
                    ")"
                ),
                help=f"Runs entering each status per workflow over {window} (replicas deduplicated).",
            )
        )
        rules.append(
            Recording(
                record=f"workflow:captaindata_run_success_ratio:increase{window}",
                expr=(
                    f'sum by ({RUN_LABELS}) ({changes}{{status="finished"}})\n'
                    "/\n"
                    f'(sum by ({RUN_LABELS}) ({changes}{{status=~"finished|warning|shutdown"}}) > 0)'
                ),
                help=(
                    f"Share of the runs that ended over {window} that finished, out of finished + warning + "
                    "shutdown (stopped runs were stopped on purpose and do not count). Absent when no run "
                    "ended."
                ),
            )
        )
    return rules


def _new_runs_expr(knobs: Knobs, status: str) -> str:
    needs_action = sel(knobs, "captaindata_run_needs_action", f'status="{status}"')
    changes = sel(knobs, "captaindata_run_status_changes_total", f'status="{status}"')
    last = sel(knobs, "captaindata_workflow_last_status_timestamp_seconds", f'status="{status}"')
    return (
        f"max by ({NEEDS_ACTION_LABELS}) (\n"
        f"  max_over_time({needs_action}[{knobs.scrape_gap}])\n"
        ")\n"
        "unless on (workspace, workflow_uid, run_uid)\n"
        f"  {needs_action} offset {knobs.recent_window}\n"
        "and on (workspace, workflow_uid)\n"
        "  (\n"
        f"    increase({changes}[{knobs.recent_window}]) > 0\n"
        "  or\n"
        f"    time() - {last} < {_number(seconds(knobs.recent_window))}\n"
        "  )"
    )


def _new_runs_design(knobs: Knobs, status: str) -> str:
    w = knobs.recent_window
    return (
        "One alert per run (labels `run_uid`, `run_name`) from "
        f'`captaindata_run_needs_action{{status="{status}"}}`, '
        f"which the exporter sets for runs currently in {status} (capped, most recent first), so the alert "
        "names the run to retry and resolves as soon as the run leaves the status (for example after a "
        f"retry). Three conditions keep it from paging on an old {status}: the workflow must have a "
        f'recent {status}, either because `captaindata_run_status_changes_total{{status="{status}"}}` '
        f"increased within {w} (the exporter saw a run enter {status}; its baseline at start-up is not "
        f"counted) or because the workflow's latest {status} finished less than {w} ago "
        f"(`captaindata_workflow_last_status_timestamp_seconds`, which also covers a run that entered "
        f"{status} while the exporter was restarting); and the run must not already have been in {status} "
        f"{w} ago (`unless ... offset {w}`), so when a new {status} arrives, the workflow's older {status} "
        f"runs from last week or last month do not page with it. A {status} run therefore alerts for at most "
        f"{w}. `max_over_time(...[{knobs.scrape_gap}])` bridges missed scrapes, so a firing alert does not "
        "resolve and fire again because one scrape failed; the cost is that it resolves up to "
        f"{knobs.scrape_gap} after the run left the status. `max by` drops `instance`, so exporter "
        "replicas give one alert. Known gap: a run that was already in "
        f"{status} exactly {w} ago, was retried and is back in {status} is not alerted on again."
    )


def run_alerts(knobs: Knobs) -> list[Alert]:
    running = st.GUIDE[st.RUNNING]
    warning = st.GUIDE[st.WARNING]
    shutdown = st.GUIDE[st.SHUTDOWN]
    stopped = st.GUIDE[st.STOPPED]
    paused = st.GUIDE[st.PAUSED]
    retry_annotation = st.RETRY_A_RUN.render().replace("{job_uid}", "{{ $labels.run_uid }}")
    oldest = sel(knobs, "captaindata_running_run_oldest_start_timestamp_seconds")
    changes_shutdown = sel(knobs, "captaindata_run_status_changes_total", 'status="shutdown"')
    changes_stopped = sel(knobs, "captaindata_run_status_changes_total", 'status="stopped"')
    needs_action_paused = sel(knobs, "captaindata_run_needs_action", 'status="paused"')
    runs_paused = sel(knobs, "captaindata_runs", 'status="paused"')
    gap = knobs.scrape_gap
    alerts = [
        Alert(
            name="CaptainDataRunRunningTooLong",
            group=GROUP_RUNS,
            expr=(
                f"time() - min by ({RUN_LABELS}) (\n"
                f"  min_over_time({oldest}[{gap}])\n"
                f") > {_number(seconds(knobs.running_too_long))}"
            ),
            for_=knobs.running_too_long_for,
            severity="warning",
            labels={"status": st.RUNNING},
            summary=f"A Captain Data run has been running for more than {knobs.running_too_long}.",
            description=(
                f"Workflow {WF} in workspace {WS} has a run that started {{{{ $value | humanizeDuration }}}} "
                f"ago and is still running (threshold {knobs.running_too_long})."
            ),
            action=running.action,
            runbook=Runbook(
                meaning=(
                    f"The oldest run of the workflow that the API lists as `running` started more than "
                    f"{knobs.running_too_long} ago. Running means: {_lower_first(running.meaning)} A run "
                    "that stays Running for hours is often not processing at all: Captain Data keeps a "
                    "rate-limited run Running while it is paused, and a run outside its eligible times waits."
                ),
                causes=(
                    "The workspace is rate limited (429s): see CaptainDataRateLimited and "
                    "`captaindata_api_rate_limited_total`; your plan limits the inputs launched in parallel.",
                    "The run's schedule or eligible times keep it waiting (for example a launch at 7 pm "
                    "with eligible times 9 am to 5 pm).",
                    "The run really is that long (many inputs); then raise the threshold for this workflow.",
                ),
                steps=(
                    "Find the run: `GET /v3/workflows/$WORKFLOW_UID/jobs?page=0` lists the workflow's runs; "
                    "take the `running` one with the oldest `start_time`. Its `name` is the job_name.",
                    *running.steps,
                ),
                api_calls=running.api_calls,
                confirm=(
                    "The alert resolves once no run of the workflow has been Running for more than "
                    f"{knobs.running_too_long}: `time() - "
                    "captaindata_running_run_oldest_start_timestamp_seconds`"
                    f" for the workflow drops below the threshold, or the series disappears because nothing "
                    f"runs. Allow {gap} after the run leaves Running."
                ),
                escalate=running.escalation,
                design=(
                    "`captaindata_running_run_oldest_start_timestamp_seconds` is the start time the API "
                    "reports, "
                    "so the age keeps growing between polls and survives exporter restarts. "
                    f"`min_over_time(...[{gap}])` bridges missed scrapes (a firing alert does not resolve "
                    f"because one scrape failed); it resolves up to {gap} after the run finished. "
                    f"`for: {knobs.running_too_long_for}` only pages if the state holds, and `min by` drops "
                    "`instance` so exporter replicas give one alert."
                ),
            ),
        ),
        Alert(
            name="CaptainDataRunWarning",
            group=GROUP_RUNS,
            expr=_new_runs_expr(knobs, st.WARNING),
            for_=knobs.warning_for,
            severity="warning",
            labels={"status": st.WARNING},
            summary="A Captain Data run ended in warning.",
            description=(
                f"Run {RUN} of workflow {WF} in workspace {WS} is in status warning. "
                f"{_sentence(warning.meaning)}"
            ),
            action=warning.action,
            annotations={"api_call": retry_annotation},
            runbook=Runbook(
                meaning=(
                    f"A run entered the `warning` status within the last {knobs.recent_window} and is still "
                    f"in it. Warning means: {_lower_first(warning.meaning)}"
                ),
                causes=(
                    "An input the run cannot process (a malformed LinkedIn URL, an unknown company...).",
                    "An invalid parameter in the launch payload or the workflow's steps.",
                ),
                steps=warning.steps,
                api_calls=warning.api_calls,
                confirm=(
                    "The alert for the run resolves when the run leaves `warning` (the retry moves it back "
                    "to "
                    f"running), {knobs.scrape_gap} later at most. `captaindata_run_needs_action"
                    '{status="warning", run_uid="..."}` is gone and the retried run ends `finished`. '
                    f"Unhandled, it resolves by itself {knobs.recent_window} after the warning."
                ),
                escalate=warning.escalation,
                design=_new_runs_design(knobs, st.WARNING),
            ),
        ),
        Alert(
            name="CaptainDataRunShutdown",
            group=GROUP_RUNS,
            expr=_new_runs_expr(knobs, st.SHUTDOWN),
            for_=knobs.shutdown_for,
            severity="warning",
            labels={"status": st.SHUTDOWN},
            summary="A Captain Data run shut down on a technical error.",
            description=(
                f"Run {RUN} of workflow {WF} in workspace {WS} is in status shutdown. "
                f"{_sentence(shutdown.meaning)}"
            ),
            action=shutdown.action,
            annotations={"api_call": retry_annotation},
            runbook=Runbook(
                meaning=(
                    f"A run entered the `shutdown` status within the last {knobs.recent_window} and is still "
                    f"in it. Shutdown means: {_lower_first(shutdown.meaning)}"
                ),
                causes=(
                    "A third-party API the step calls failed (a 5xx from the website being automated).",
                    "An incident on Captain Data's side.",
                ),
                steps=shutdown.steps,
                api_calls=shutdown.api_calls,
                confirm=(
                    f"The alert for the run resolves when the run leaves `shutdown` ({knobs.scrape_gap} "
                    "later "
                    "at most) and the retried run ends `finished`. Unhandled, it resolves by itself "
                    f"{knobs.recent_window} after the shutdown."
                ),
                escalate=(
                    f"{shutdown.escalation} CaptainDataRunShutdownsPersisting fires when "
                    f"{knobs.shutdowns_persisting_count} or more runs of a workflow shut down within "
                    f"{knobs.shutdowns_persisting_window}."
                ),
                design=_new_runs_design(knobs, st.SHUTDOWN),
            ),
        ),
        Alert(
            name="CaptainDataRunShutdownsPersisting",
            group=GROUP_RUNS,
            expr=(
                f"max by ({RUN_LABELS}) (\n"
                f"  increase({changes_shutdown}"
                f"[{knobs.shutdowns_persisting_window}])\n"
                f") >= {knobs.shutdowns_persisting_count}"
            ),
            for_=knobs.shutdowns_persisting_for,
            severity="critical",
            labels={"status": st.SHUTDOWN},
            summary="Captain Data runs of a workflow keep shutting down.",
            description=(
                f"{COUNT} runs of workflow {WF} in workspace {WS} entered shutdown in the last "
                f"{knobs.shutdowns_persisting_window} (threshold {knobs.shutdowns_persisting_count}). "
                f"{_sentence(shutdown.meaning)}"
            ),
            action=(
                "The error persists: contact Captain Data support with the run uids and the errors from the "
                "failed webhooks; retrying more runs will not help until the technical error is fixed."
            ),
            runbook=Runbook(
                meaning=(
                    f"{knobs.shutdowns_persisting_count} or more runs of one workflow entered `shutdown` "
                    "within "
                    f"{knobs.shutdowns_persisting_window}. One shutdown is worth a retry; shutdowns that "
                    "keep "
                    "coming are a technical error that retries do not fix, which Captain Data asks you to "
                    "report."
                ),
                causes=(
                    "A lasting outage of a third-party API the workflow depends on.",
                    "An incident or a regression on Captain Data's side.",
                    "Retries of runs that fail again for the same reason.",
                ),
                steps=(
                    "List the workflow's runs in shutdown "
                    '(`captaindata_run_needs_action{status="shutdown"}` '
                    "or `GET /v3/workflows/$WORKFLOW_UID/jobs?page=0`) and collect their uids.",
                    "Read each run's error in its failed webhook or `GET /v3/jobs/$RUN_UID` "
                    "(`error_message`).",
                    "Contact Captain Data support with the workflow uid, the run uids and the errors.",
                    "Pause or remove the workflow's schedule (DEL - Remove a Schedule) if every new run "
                    "shuts down anyway, and retry the runs once support confirms the fix.",
                ),
                api_calls=(st.REMOVE_A_SCHEDULE, st.RETRY_A_RUN),
                confirm=(
                    "No more runs of the workflow enter `shutdown`: the alert resolves once fewer than "
                    f"{knobs.shutdowns_persisting_count} did within {knobs.shutdowns_persisting_window}, "
                    "and retried runs end `finished`."
                ),
                escalate="This alert is the escalation: page whoever owns the Captain Data relationship.",
                design=(
                    f"Counts runs that entered shutdown with `increase(captaindata_run_status_changes_total"
                    f'{{status="shutdown"}}[{knobs.shutdowns_persisting_window}])`, which needs no `for:`: '
                    "the window itself makes the condition sustained, a missed scrape does not change a "
                    "range "
                    "query, an exporter restart is a counter reset that `increase` handles, and the baseline "
                    "poll after a restart is not counted, so old shutdowns never count. The alert resolves "
                    f"by itself once the shutdowns are more than {knobs.shutdowns_persisting_window} old. "
                    "`max by` drops `instance` so exporter replicas give one alert."
                ),
            ),
        ),
        Alert(
            name="CaptainDataRunPaused",
            group=GROUP_RUNS,
            expr=(
                f"max by ({NEEDS_ACTION_LABELS}) (\n"
                f"  max_over_time({needs_action_paused}[{gap}])\n"
                ")\n"
                "or on (workspace, workflow_uid)\n"
                f"max by ({RUN_LABELS}, status) (\n"
                f"  last_over_time({runs_paused}[{gap}])\n"
                ") > 0"
            ),
            for_=knobs.paused_for,
            severity="warning",
            labels={"status": st.PAUSED},
            summary="A Captain Data run is paused.",
            description=(
                f"{{{{ if $labels.run_uid }}}}Run {RUN} of workflow {WF} in workspace {WS} is in status "
                "paused."
                f"{{{{ else }}}}{COUNT} runs of workflow {WF} in workspace {WS} are in status paused."
                f"{{{{ end }}}} {_sentence(paused.meaning)}"
            ),
            action=paused.action,
            runbook=Runbook(
                meaning=(
                    "A run is in the `paused` status now and has been for "
                    f"{knobs.paused_for}. Paused means: {_lower_first(paused.meaning)} A paused run does not "
                    "resume by itself until its account is fixed, so this alert lasts as long as the run "
                    "stays paused."
                ),
                causes=(
                    "The LinkedIn (or other) session cookie of the account expired or was revoked.",
                    "The account ran out of credits, or reached its limits.",
                    "The API key of an integration account is outdated.",
                ),
                steps=paused.steps,
                api_calls=paused.api_calls,
                confirm=(
                    "The run leaves `paused` (it resumes or is retried): its "
                    '`captaindata_run_needs_action{status="paused"}` series disappears and '
                    '`captaindata_runs{status="paused"}` for the workflow drops to 0. Allow '
                    f"{knobs.scrape_gap}."
                ),
                escalate=paused.escalation,
                design=(
                    "Paused is a current state, not an event: a run paused since last month still waits for "
                    'someone, so the alert follows `captaindata_run_needs_action{status="paused"}` (one '
                    "alert per paused run, with its name and uid) and lasts while the run is paused. "
                    "Workflows whose paused runs have no `needs_action` series (the exporter caps them) "
                    'still alert, once per workflow, from `captaindata_runs{status="paused"} > 0` (the '
                    "`or on (workspace, workflow_uid)` branch; the description then gives the count). "
                    f"`max_over_time`/`last_over_time` over {gap} bridge missed scrapes, and "
                    f"`for: {knobs.paused_for}` leaves time for a pause that is being fixed already "
                    "(someone is refreshing the account)."
                ),
            ),
        ),
        Alert(
            name="CaptainDataRunStopped",
            group=GROUP_RUNS,
            expr=(f"max by ({RUN_LABELS}) (\n  increase({changes_stopped}[{knobs.stopped_window}])\n) > 0"),
            for_="0s",
            severity="info",
            labels={"status": st.STOPPED},
            summary="A Captain Data run was stopped.",
            description=(
                f"{COUNT} run(s) of workflow {WF} in workspace {WS} were stopped in the last "
                f"{knobs.stopped_window}. {_sentence(stopped.meaning)}"
            ),
            action=stopped.action,
            runbook=Runbook(
                meaning=(
                    f"A run of the workflow entered `stopped` within the last {knobs.stopped_window}. "
                    "Stopped "
                    f"means: {_lower_first(stopped.meaning)} This is an `info` alert: usually someone meant "
                    "it."
                ),
                causes=(
                    "Someone on your team stopped the run in the Captain Data app.",
                    "Your own automation called Cancel a Run.",
                ),
                steps=(
                    *stopped.steps,
                    "Find the stopped run: `GET /v3/workflows/$WORKFLOW_UID/jobs?page=0`, status `stopped`.",
                ),
                api_calls=stopped.api_calls,
                confirm=(
                    f"Nothing to resolve: the alert ends by itself {knobs.stopped_window} after the stop. A "
                    "relaunched or retried run shows up as `running`, then `finished`."
                ),
                escalate=stopped.escalation,
                design=(
                    "Stopped runs have no `needs_action` series, so the alert counts stops per workflow "
                    "with "
                    f'`increase(captaindata_run_status_changes_total{{status="stopped"}}'
                    f"[{knobs.stopped_window}])`. It notifies once per stop and ends by itself after "
                    f"{knobs.stopped_window}; a missed scrape does not change a range query, and the "
                    "baseline poll after an exporter restart is not counted, so old stops never alert."
                ),
            ),
        ),
    ]
    return alerts


def exporter_alerts(knobs: Knobs) -> list[Alert]:
    gap = knobs.scrape_gap
    up = sel(knobs, "captaindata_up")
    poll_errors = "captaindata_poll_errors_total"
    errors_explained = sel(knobs, poll_errors, 'reason=~"unauthorized|rate_limited"')
    errors_unauthorized = sel(knobs, poll_errors, 'reason="unauthorized"')
    query_errors = (
        "{{ range printf `sort_desc(increase(" + poll_errors + "{" + knobs.selector + ", instance=%q, "
        f"workspace=%q}}[{knobs.poll_errors_window}]) > 0)` $labels.instance $labels.workspace | query }}}}"
        ' {{ .Labels.reason }}={{ .Value | printf "%.0f" }}{{ end }}'
    )
    explained_elsewhere = f"increase({errors_explained}[{knobs.poll_errors_window}]) > 0"
    return [
        Alert(
            name="CaptainDataRateLimited",
            group=GROUP_EXPORTER,
            expr=(
                "max by (workspace) (\n"
                f"  sum without (endpoint) (increase({sel(knobs, 'captaindata_api_rate_limited_total')}"
                f"[{knobs.rate_limited_window}]))\n"
                ") > 0"
            ),
            for_=knobs.rate_limited_for,
            severity="warning",
            summary=f"The Captain Data API keeps rate limiting workspace {WS}.",
            description=(
                f"The Captain Data API answered 429 Too Many Requests {COUNT} times in the last "
                f"{knobs.rate_limited_window} to the exporter's requests for workspace {WS}, and 429s have "
                "kept "
                f"coming for {knobs.rate_limited_for}. Runs of this workspace may be paused by Captain Data "
                "and look stuck in Running."
            ),
            action=(
                "Review your plan's rate limits and your schedules, and spread launches out; make your own "
                "launches handle 429s (wait for Retry-After, then retry with backoff); raise the exporter's "
                "poll interval if its own polling adds to the load."
            ),
            runbook=Runbook(
                meaning=(
                    "The Captain Data API keeps answering the exporter with 429 Too Many Requests for this "
                    "workspace. The limit is per workspace, so your own launches are hitting it too: "
                    "launches "
                    "over the API that get a 429 are not queued, and Captain Data keeps a rate-limited run "
                    "Running while it is paused."
                ),
                causes=(
                    "Too many inputs launched in parallel for your plan (100 on Pro-like plans, 5000 on "
                    "Scale and Growth; Enterprise has no limit).",
                    "Schedules that launch many workflows at the same minute.",
                    "The exporter polls too often, or tracks very many workflows, for the remaining quota.",
                ),
                steps=(
                    "Check `captaindata_api_retry_after_seconds` and `captaindata_api_rate_limited_total` by "
                    "endpoint to see how long the API asks to wait and how often.",
                    "Review your plan's rate limits and your schedules; spread launches out.",
                    "Make your own launches handle 429: wait for `Retry-After`, then retry with backoff "
                    "(launches over the API are not queued for you).",
                    "If the exporter's polling is a large part of the traffic, raise its `poll.interval`.",
                    "Check for runs stuck in Running (CaptainDataRunRunningTooLong): they may be the "
                    "rate-limited ones.",
                ),
                confirm=(
                    f"No 429 for {knobs.rate_limited_window}: `increase(captaindata_api_rate_limited_total"
                    f"[{knobs.rate_limited_window}])` is 0 for the workspace, and the alert resolves."
                ),
                escalate=(
                    "If 429s persist with a load well under your plan's limits, contact Captain Data support "
                    "(include `captaindata_api_retry_after_seconds` and the endpoints affected)."
                ),
                design=(
                    f"`increase(captaindata_api_rate_limited_total[{knobs.rate_limited_window}]) > 0` holds "
                    f"for {knobs.rate_limited_window} after each 429, so with `for: "
                    f"{knobs.rate_limited_for}` "
                    f"a single 429 (or one burst) never fires: 429s must keep arriving at least every "
                    f"{knobs.rate_limited_window} for {knobs.rate_limited_for}. The counter is "
                    "pre-initialised "
                    "at 0, a range query is immune to a missed scrape, and `max by (workspace)` merges "
                    "exporter replicas."
                ),
            ),
        ),
        Alert(
            name="CaptainDataExporterPollFailing",
            group=GROUP_EXPORTER,
            expr=(
                f"last_over_time({up}[{gap}]) == 0\n"
                "unless on (job, instance, workspace)\n"
                f"  {explained_elsewhere}"
            ),
            for_=knobs.poll_failing_for,
            severity="warning",
            summary=f"The exporter cannot poll Captain Data workspace {WS}.",
            description=(
                f"Every poll of workspace {WS} by {INSTANCE} has failed for {knobs.poll_failing_for}, so its "
                f"run metrics are frozen and run alerts cannot fire. Poll errors in the last "
                f"{knobs.poll_errors_window} by reason:{query_errors}."
            ),
            action=(
                "Read the exporter's log for the failing requests; check that the Captain Data API answers "
                "from where the exporter runs (DNS, proxy, firewall) and the exporter's base_url and "
                "timeouts; "
                "check status.captaindata.co for an incident."
            ),
            runbook=Runbook(
                meaning=(
                    "`captaindata_up` is 0 for the workspace: the exporter's polls of the Captain Data API "
                    "fail, so the workspace's run metrics are not updated and no run alert can fire. "
                    "Failures "
                    "caused by a rejected API key or by rate limiting have their own alerts "
                    "(CaptainDataExporterUnauthorized, CaptainDataRateLimited) and are left out here."
                ),
                causes=(
                    "`timeout` / `network`: the API is unreachable from the exporter (DNS, proxy, firewall, "
                    "an outage) or slower than the exporter's timeout.",
                    "`server_error`: the API answers 5xx.",
                    "`bad_response`: the API answered something the exporter cannot parse (an API change, "
                    "a wrong base_url answering HTML).",
                    "`page_cap`: a workflow lists more pages than the exporter's page cap.",
                ),
                steps=(
                    "Look at the reasons in the alert (from `captaindata_poll_errors_total`) and at the "
                    "exporter's log (`--log.level debug` shows each request).",
                    "From the exporter's host or pod: `curl -sS -o /dev/null -w '%{http_code}\\n' "
                    '-H "Authorization: x-api-key $CAPTAINDATA_API_KEY" -H "x-project-id: '
                    '$WORKSPACE_UID" '
                    "https://api.captaindata.co/v3/workflows`.",
                    "Fix the network path or the exporter's base_url / timeouts in its configuration; for "
                    "`page_cap`, raise the cap in the configuration.",
                ),
                confirm=(
                    '`captaindata_up{workspace="..."}` is back to 1 and '
                    "`captaindata_last_poll_success_timestamp_seconds` moves again; the alert resolves at "
                    "the "
                    "next evaluation."
                ),
                escalate=(
                    "If the API itself answers 5xx or times out for everyone (check Captain Data's status "
                    "page), contact Captain Data support; while it lasts, run alerts for the workspace are "
                    "blind."
                ),
                design=(
                    f"`last_over_time(captaindata_up[{gap}]) == 0` is the latest poll result, kept across "
                    f"missed scrapes; with `for: {knobs.poll_failing_for}` one failed poll (or a few) never "
                    "fires: only polls that fail for that long do. The `unless` leaves out workspaces whose "
                    f"polls got 401/403 or 429 within {knobs.poll_errors_window}, because "
                    "CaptainDataExporterUnauthorized and CaptainDataRateLimited already say what to do "
                    "about those. The alert keeps `instance`: a failing exporter replica is worth knowing "
                    "about even when another one polls fine."
                ),
            ),
        ),
        Alert(
            name="CaptainDataExporterPollStale",
            group=GROUP_EXPORTER,
            expr=(
                "time() - last_over_time("
                f"{sel(knobs, 'captaindata_last_poll_success_timestamp_seconds')}[{gap}])\n"
                f"  > {_number(seconds(knobs.poll_stale_threshold))}\n"
                "unless on (job, instance, workspace)\n"
                f"  last_over_time({up}[{gap}]) == 0"
            ),
            for_=knobs.poll_stale_for,
            severity="warning",
            summary=f"The exporter's data for Captain Data workspace {WS} is stale.",
            description=(
                f"The last successful poll of workspace {WS} by {INSTANCE} finished "
                f"{{{{ $value | humanizeDuration }}}} ago (threshold {knobs.poll_stale_threshold}), although "
                "no "
                "poll has failed: polls are stuck or take far too long, and run metrics are frozen."
            ),
            action=(
                "Check captaindata_poll_duration_seconds and the exporter's log; restart the exporter if no "
                "poll completes; if polls are just slow (many workflows or pages, long Retry-After waits), "
                "raise the poll interval or track fewer workflows."
            ),
            runbook=Runbook(
                meaning=(
                    f"The exporter's last successful poll of the workspace is more than "
                    f"{knobs.poll_stale_threshold} old, yet `captaindata_up` still says the last poll "
                    "succeeded: no poll has completed since. The run metrics are frozen at that poll."
                ),
                causes=(
                    "A poll that takes much longer than the poll interval (very many workflows or pages, "
                    "long Retry-After waits).",
                    "A stuck poll loop in the exporter (a bug).",
                ),
                steps=(
                    "Compare `captaindata_poll_duration_seconds` with the poll interval.",
                    "Read the exporter's log for the poll that does not finish (`--log.level debug`).",
                    "Restart the exporter if no poll completes; report the log as a bug.",
                    "If polls are merely slow, raise `poll.interval` or track fewer workflows.",
                ),
                confirm=(
                    "`time() - captaindata_last_poll_success_timestamp_seconds` is back under the poll "
                    "interval; the alert resolves."
                ),
                escalate="If restarting does not help, open an issue with the exporter's debug log.",
                design=(
                    "Polls that fail set `captaindata_up` to 0 and are reported by the other exporter "
                    "alerts, "
                    "so this one is left for the case they miss: no poll completes at all. The timestamp is "
                    f"taken with `last_over_time(...[{gap}])` so a missed scrape neither fires nor resolves "
                    f"it, and `for: {knobs.poll_stale_for}` on top of the {knobs.poll_stale_threshold} "
                    "threshold keeps one slow poll from paging."
                ),
            ),
        ),
        Alert(
            name="CaptainDataExporterUnauthorized",
            group=GROUP_EXPORTER,
            expr=(
                f"increase({errors_unauthorized}[{knobs.poll_errors_window}]) > 0\n"
                "and on (job, instance, workspace)\n"
                f"  last_over_time({up}[{gap}]) == 0"
            ),
            for_=knobs.unauthorized_for,
            severity="critical",
            summary=f"The Captain Data API rejects the exporter's API key for workspace {WS}.",
            description=(
                f"Polls of workspace {WS} by {INSTANCE} fail with 401/403 and none has succeeded for "
                f"{knobs.unauthorized_for}: the API key is wrong or outdated, or does not belong to the "
                "workspace uid. No run alert can fire for this workspace."
            ),
            action=(
                "Get a valid API key for the workspace from Captain Data (it must belong to the workspace "
                "uid "
                "sent as x-project-id), put it in the exporter's api_key or api_key_file for this workspace, "
                "and restart the exporter."
            ),
            runbook=Runbook(
                meaning=(
                    "The Captain Data API answers the exporter's polls for this workspace with 401 or 403 "
                    "and no poll succeeds: the API key is wrong, was rotated or revoked, or belongs to "
                    "another "
                    "workspace than the `workspace_uid` the exporter sends as `x-project-id`. The "
                    "workspace's "
                    "run metrics are frozen."
                ),
                causes=(
                    "The API key was rotated in Captain Data and the exporter still has the old one.",
                    "The Secret or file holding the key is empty, or has a stray newline or quote.",
                    "The key and the workspace uid do not belong together.",
                ),
                steps=(
                    "Check the key from the exporter's host: `curl -sS -o /dev/null -w '%{http_code}\\n' "
                    '-H "Authorization: x-api-key $CAPTAINDATA_API_KEY" -H "x-project-id: '
                    '$WORKSPACE_UID" '
                    "https://api.captaindata.co/v3/workflows` must print 200.",
                    "Get the workspace's current API key from the Captain Data app.",
                    "Update `api_key` / `api_key_file` (or the Kubernetes Secret) for this workspace in the "
                    "exporter's configuration and restart the exporter.",
                ),
                confirm=(
                    '`captaindata_up{workspace="..."}` is back to 1 and '
                    '`captaindata_poll_errors_total{reason="unauthorized"}` stops increasing.'
                ),
                escalate=(
                    "If a key that works with curl is still rejected by the exporter, open an exporter "
                    "issue; "
                    "if the app's own key is rejected, contact Captain Data support."
                ),
                design=(
                    f"Two conditions, both robust to a missed scrape: 401/403 poll errors within "
                    f"{knobs.poll_errors_window} (`increase(captaindata_poll_errors_total{{reason="
                    f'"unauthorized"}}[{knobs.poll_errors_window}]) > 0`), and the latest poll failed '
                    f"(`last_over_time(captaindata_up[{gap}]) == 0`). A single 401 followed by a success "
                    f"does not fire, and `for: {knobs.unauthorized_for}` requires the rejection to last. "
                    "Severity is critical because nothing else about the workspace can alert until it is "
                    "fixed; CaptainDataExporterPollFailing stays quiet for it."
                ),
            ),
        ),
        Alert(
            name="CaptainDataExporterDown",
            group=GROUP_EXPORTER,
            expr=f"{sel(knobs, 'up')} == 0\nor\nabsent({sel(knobs, 'up')})",
            for_=knobs.exporter_down_for,
            severity="critical",
            summary="Prometheus cannot scrape the Captain Data exporter.",
            description=(
                f"{{{{ if $labels.instance }}}}Target {INSTANCE} of job {{{{ $labels.job }}}} has been down "
                "for "
                f"{knobs.exporter_down_for}.{{{{ else }}}}Prometheus has had no Captain Data exporter target "
                f"for {knobs.exporter_down_for}.{{{{ end }}}} No Captain Data alert can fire while it is "
                "down."
            ),
            action=(
                "Check that the exporter process or pod is running and healthy (/-/healthy), read its log, "
                "and check Prometheus' target page for the scrape error."
            ),
            runbook=Runbook(
                meaning=(
                    "Prometheus cannot scrape the exporter (`up == 0`), or has no exporter target at all. "
                    "Every other Captain Data alert depends on those metrics, so they are all blind."
                ),
                causes=(
                    "The exporter crashed or cannot start (a configuration error: run it with "
                    "`--check-config`).",
                    "A network policy, a wrong port or a changed Service/ServiceMonitor.",
                    "The scrape takes longer than the scrape timeout.",
                ),
                steps=(
                    "Look at Prometheus' Status → Targets page for the scrape error.",
                    "Check the process or pod (`kubectl get pods`, `kubectl logs`) and its `/-/healthy` "
                    "endpoint.",
                    "Validate the configuration with `captaindata-exporter --config FILE --check-config`.",
                ),
                confirm="`up` for the target is 1 again; the alert resolves at the next evaluation.",
                escalate="If the exporter crashes on a valid configuration, open an issue with its log.",
                design=(
                    f"`up == 0` for {knobs.exporter_down_for} (one failed scrape never fires) or "
                    f"`absent(up{{{knobs.selector}}})` for when the target vanished from service discovery. "
                    "Keeps `instance` so each replica is reported."
                ),
            ),
        ),
    ]


def all_alerts(knobs: Knobs) -> list[Alert]:
    return run_alerts(knobs) + exporter_alerts(knobs)


# --- Rendering ----------------------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    """Block-style YAML with indented sequences and multi-line strings as literal blocks."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _represent_str)


def _yaml(data: Any) -> str:
    text: str = yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=10_000, allow_unicode=True)
    return text


def rule_groups(knobs: Knobs) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = [
        {
            "name": GROUP_RECORDING,
            "rules": [{"record": r.record, "expr": r.expr} for r in recording_rules(knobs)],
        }
    ]
    for group in (GROUP_RUNS, GROUP_EXPORTER):
        groups.append(
            {"name": group, "rules": [a.rule(knobs) for a in all_alerts(knobs) if a.group == group]}
        )
    return groups


def _header(knobs: Knobs, comment: str) -> str:
    changed = [
        f"{f.name}={getattr(knobs, f.name)}" for f in KNOB_FIELDS if getattr(knobs, f.name) != f.default
    ]
    lines = [
        "Generated by deploy/generate.py from exporter/statuses.py. Do not edit: change the generator",
        "and run `python deploy/generate.py` (docs/alerts.md lists the knobs).",
    ]
    if changed:
        lines.append("Knobs changed from the defaults: " + ", ".join(changed))
    return "".join(f"{comment} {line}\n" for line in lines)


def render_rules(knobs: Knobs) -> str:
    return _header(knobs, "#") + _yaml({"groups": rule_groups(knobs)})


def render_prometheus_rule(knobs: Knobs) -> str:
    resource = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "captaindata-exporter",
            "labels": {
                "app.kubernetes.io/name": "captaindata-exporter",
                "app.kubernetes.io/component": "alerting-rules",
                # kube-prometheus-stack selects PrometheusRules by its Helm release name (ruleSelector), like
                # the ServiceMonitor beside this file: set it to yours.
                "release": "kube-prometheus-stack",
            },
        },
        "spec": {"groups": rule_groups(knobs)},
    }
    return _header(knobs, "#") + _yaml(resource)


_SHELL_VARS = {
    "job_uid": "$RUN_UID",
    "job_name": "$RUN_NAME_URLENCODED",
    "workflow_uid": "$WORKFLOW_UID",
    "integration_uid": "$INTEGRATION_UID",
}
_BODIES = {
    st.RETRY_A_RUN.name: "--data @launch-payload.json",
    st.LAUNCH_WORKFLOW.name: "--data @launch-payload.json",
    st.UPDATE_INTEGRATION_ACCOUNT.name: (
        '--data \'{"account": {"uid": "ACCOUNT_UID", "cookies": {"li_at": "NEW_SESSION_COOKIE"}}, '
        '"resume_paused_jobs": true}\''
    ),
}


def curl(call: st.ApiCall) -> str:
    """The API call as a copy-pasteable curl command (variables as in the runbooks' conventions)."""
    url = call.path
    for placeholder, variable in _SHELL_VARS.items():
        url = url.replace("{" + placeholder + "}", variable)
    lines = [
        f'curl -sS -X {call.method} "{url}"',
        '  -H "Authorization: x-api-key $CAPTAINDATA_API_KEY"',
        '  -H "x-project-id: $WORKSPACE_UID"',
    ]
    body = _BODIES.get(call.name)
    if body:
        lines += ['  -H "Content-Type: application/json"', f"  {body}"]
    return " \\\n".join(lines)


def _knob_table(knobs: Knobs) -> list[str]:
    return [f"`{f.name}`={getattr(knobs, f.name)}" for f in KNOB_FIELDS]


def render_runbooks(knobs: Knobs) -> str:
    alerts = all_alerts(knobs)
    out: list[str] = [
        "<!-- " + _header(knobs, "").strip().replace("\n ", " ") + " -->",
        "",
        "# Runbooks for the Captain Data alerts",
        "",
        "One section per alert of `deploy/prometheus/captaindata-alerts.rules.yml`: what it means, likely "
        "causes, what to do step by step (with the exact API call), how to confirm it is resolved, when to "
        "escalate, and why the expression looks the way it does. The alert's `runbook_url` annotation links "
        "to its section; its `action` annotation carries the recommended action below. "
        "[alerts.md](alerts.md) explains the knobs and the tests.",
        "",
        "| Alert | Severity | For | Recommended action |",
        "| --- | --- | --- | --- |",
    ]
    for alert in alerts:
        for_ = alert.for_ if seconds(alert.for_) > 0 else "-"
        out.append(f"| [{alert.name}](#{alert.name.lower()}) | {alert.severity} | {for_} | {alert.action} |")
    out += [
        "",
        "## Conventions",
        "",
        "The API calls below use these shell variables; take the values from the alert's labels:",
        "",
        "```bash",
        "export CAPTAINDATA_API_KEY=...   # the workspace's API key (never paste it into a ticket)",
        "export WORKSPACE_UID=...         # the workspace uid (the exporter's workspace_uid for label "
        "`workspace`)",
        "WORKFLOW_UID=...                 # label workflow_uid",
        "RUN_UID=...                      # label run_uid (the API calls a run a job: job_uid)",
        "RUN_NAME_URLENCODED=...          # label run_name, URL-encoded (the API's job_name)",
        "```",
        "",
        "Retry a Run and Launch a Workflow take the same JSON body: the run's launch payload "
        "(`launch-payload.json`, with `job_name`, `steps` and `inputs`).",
        "",
        "## Run statuses at a glance",
        "",
        "| Status | Meaning | What to do |",
        "| --- | --- | --- |",
    ]
    for status in st.KNOWN_STATUSES:
        guide = st.GUIDE[status]
        out.append(f"| `{status}` | {guide.meaning} | {guide.action} |")
    for alert in alerts:
        rb = alert.runbook
        for_ = f"`for: {alert.for_}`" if seconds(alert.for_) > 0 else "no `for:` (fires at once)"
        labels = ", ".join(f"`{k}={v}`" for k, v in {"severity": alert.severity, **alert.labels}.items())
        out += [
            "",
            f"## {alert.name}",
            "",
            f"**{alert.summary}** Labels: {labels}; {for_}.",
            "",
            "```promql",
            alert.expr,
            "```",
            "",
            "### What it means",
            "",
            rb.meaning,
            "",
            "### Likely causes",
            "",
            *[f"- {cause}" for cause in rb.causes],
            "",
            "### What to do",
            "",
            f"Recommended action: {alert.action}",
            "",
            *[f"{i}. {step}" for i, step in enumerate(rb.steps, 1)],
        ]
        for call in rb.api_calls:
            note = f"; {call.note}" if call.note else ""
            out += ["", f"{call.name}: `{call.render()}`{note}.", "", "```bash", curl(call), "```"]
        out += [
            "",
            "### How to confirm it is resolved",
            "",
            rb.confirm,
            "",
            "### When to escalate",
            "",
            rb.escalate,
            "",
            "### Why the expression looks like this",
            "",
            rb.design,
        ]
    out += [
        "",
        "## Knobs used for this file",
        "",
        ", ".join(_knob_table(knobs)) + ".",
        "",
    ]
    return "\n".join(out)


def render_all(knobs: Knobs) -> dict[str, str]:
    knobs.validate()
    return {
        RULES_FILE: render_rules(knobs),
        PROMETHEUS_RULE_FILE: render_prometheus_rule(knobs),
        RUNBOOKS_FILE: render_runbooks(knobs),
    }


# --- Command line -------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Generate the alert rules, the PrometheusRule and docs/runbooks.md from statuses.py.",
    )
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file would change")
    parser.add_argument(
        "--output-dir",
        type=Path,
        help="write the three files flat into this directory instead of their places in the repository",
    )
    knobs = parser.add_argument_group("knobs (see docs/alerts.md)")
    for f in KNOB_FIELDS:
        knobs.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            default=f.default,
            type=int if f.type in {"int", int} else str,
            help=f"{f.metadata['help']} (default: {f.default})",
        )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    knobs = Knobs(**{f.name: getattr(args, f.name) for f in KNOB_FIELDS})
    try:
        files = render_all(knobs)
    except ValueError as error:
        print(f"generate.py: {error}", file=sys.stderr)
        return 2
    stale: list[str] = []
    for name, text in files.items():
        path = args.output_dir / name if args.output_dir else REPO / COMMITTED[name]
        current = path.read_text() if path.exists() else ""
        if current == text:
            continue
        stale.append(str(path))
        if args.check:
            sys.stdout.writelines(
                difflib.unified_diff(
                    current.splitlines(keepends=True), text.splitlines(keepends=True), str(path), "generated"
                )
            )
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if args.check:
        if stale:
            print(f"\nOut of date: {', '.join(stale)}. Run: python deploy/generate.py", file=sys.stderr)
            return 1
        return 0
    for name in stale:
        print(f"wrote {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
