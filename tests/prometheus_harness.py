"""A real Prometheus for tests: scrape local targets, load our rules, evaluate our PromQL.

The one call an end-to-end test needs (gateway on :3000, Triton's metrics on :8002)::

    from prometheus_harness import evaluate_monitoring_expressions

    results = evaluate_monitoring_expressions(gateway="127.0.0.1:3000", triton="127.0.0.1:8002",
                                              workdir=tmp_path)
    assert all(r.parses for r in results)
    no_data = [r.source for r in results if not r.has_data]

It installs the Debian `prometheus` package if needed (scripts/ensure-debian-packages.sh),
writes a prometheus.yml that scrapes every second the jobs the alert rules expect,
``ecgscreen-gateway`` and ``ecgscreen-triton`` (in Kubernetes the ServiceMonitors name the
jobs after the Services), with the static labels ``namespace`` and ``pod`` that Kubernetes
service discovery would add; loads the recording and alert rules (group intervals forced to
1 s); starts ``prometheus`` on a free loopback port with its TSDB in ``workdir``; waits for
``/-/ready`` and for every target to be up; then sends each expression of the Grafana
dashboard (template variables substituted) and of the rule files to ``/api/v1/query``.

For finer control use :class:`PrometheusHarness` (a context manager) and
:func:`monitoring_expressions` / :func:`evaluate_expressions` directly.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "DASHBOARD",
    "GATEWAY_JOB",
    "GRAFANA_VARIABLES",
    "RULE_FILES",
    "TRITON_JOB",
    "ExpressionResult",
    "PrometheusHarness",
    "dashboard_expressions",
    "ensure_prometheus",
    "evaluate_expressions",
    "evaluate_monitoring_expressions",
    "monitoring_expressions",
    "rule_expressions",
    "substitute_grafana_variables",
]

REPO = Path(__file__).resolve().parents[1]
MONITORING = REPO / "k8s" / "monitoring"
DASHBOARD = MONITORING / "dashboards" / "ecgscreen.json"
RULE_FILES = (
    MONITORING / "rules" / "ecgscreen-recording.rules.yaml",
    MONITORING / "rules" / "ecgscreen-alerts.rules.yaml",
)
ENSURE_SCRIPT = REPO / "scripts" / "ensure-debian-packages.sh"

GATEWAY_JOB = "ecgscreen-gateway"
TRITON_JOB = "ecgscreen-triton"
NAMESPACE = "ecgscreen"

# What Grafana would put in place of the dashboard's variables. `$namespace` is the "All"
# value (`.*`); the rate window is long enough for a 1 s scrape interval.
GRAFANA_VARIABLES = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "1h",
    "namespace": ".*",
}


@dataclass(frozen=True)
class ExpressionResult:
    """What Prometheus made of one expression.

    ``parses`` is False only for a syntax error (``errorType: bad_data``); an expression that
    parses but fails to run (e.g. many-to-many matching) has ``parses=True`` and ``error`` set.
    ``has_data`` is True when the instant query returned at least one sample; ``values``
    holds the sample values of a vector or scalar result.
    """

    source: str
    expr: str
    parses: bool
    has_data: bool
    series: int = 0
    values: tuple[float, ...] = ()
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.parses and self.error is None


def ensure_prometheus() -> str:
    """Path of the `prometheus` binary, installing the Debian package when missing."""
    result = subprocess.run(
        ["bash", str(ENSURE_SCRIPT), "prometheus"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"could not install prometheus:\n{result.stdout}\n{result.stderr}")
    binary = shutil.which("prometheus")
    if binary is None:
        raise RuntimeError("prometheus installed but not on PATH")
    return binary


def substitute_grafana_variables(expr: str, variables: Mapping[str, str] | None = None) -> str:
    """Replace `$name` / `${name}` / `[[name]]` Grafana variables; unknown ones raise."""
    values = dict(GRAFANA_VARIABLES if variables is None else variables)

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name not in values:
            raise KeyError(f"no value for Grafana variable {name!r} in {expr!r}")
        return values[name]

    pattern = r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]"
    return re.sub(pattern, value, expr)


def dashboard_expressions(
    path: Path = DASHBOARD, variables: Mapping[str, str] | None = None
) -> list[tuple[str, str]]:
    """(source, expr) for every target of every panel, nested rows included."""
    dashboard = json.loads(Path(path).read_text())
    found: list[tuple[str, str]] = []

    def walk(panels: Iterable[dict[str, Any]]) -> None:
        for panel in panels:
            for target in panel.get("targets", []):
                if target.get("expr"):
                    source = f"dashboard: {panel['title']} [{target.get('refId', '?')}]"
                    found.append((source, substitute_grafana_variables(target["expr"], variables)))
            walk(panel.get("panels", []))

    walk(dashboard["panels"])
    return found


def rule_expressions(paths: Sequence[Path] = RULE_FILES) -> list[tuple[str, str]]:
    """(source, expr) for every recording and alerting rule of plain Prometheus rule files."""
    found = []
    for path in paths:
        for group in yaml.safe_load(Path(path).read_text())["groups"]:
            for rule in group["rules"]:
                kind, name = ("alert", rule["alert"]) if "alert" in rule else ("record", rule["record"])
                found.append((f"{kind}: {name}", rule["expr"]))
    return found


def monitoring_expressions() -> list[tuple[str, str]]:
    """Every PromQL expression the project ships: dashboard first, then the rules."""
    return dashboard_expressions() + rule_expressions()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrometheusHarness:
    """A throw-away Prometheus scraping ``targets`` ({job: "host:port"}) every ``scrape_interval``.

    Use as a context manager; ``url`` is its HTTP API. ``scrape_self`` adds the job
    ``prometheus`` scraping this Prometheus itself. Rule files are copied into ``workdir``
    with every group's ``interval`` set to ``rule_interval``, so the 5 min drift groups have
    results within seconds.
    """

    def __init__(
        self,
        targets: Mapping[str, str],
        workdir: Path,
        *,
        rule_files: Sequence[Path] = RULE_FILES,
        scrape_interval: str = "1s",
        rule_interval: str = "1s",
        static_labels: bool = True,
        scrape_self: bool = False,
        binary: str | None = None,
        port: int | None = None,
    ) -> None:
        if not targets:
            raise ValueError("targets is empty: give at least one {job: 'host:port'}")
        self.targets = dict(targets)
        self.workdir = Path(workdir)
        self.rule_files = tuple(rule_files)
        self.scrape_interval = scrape_interval
        self.rule_interval = rule_interval
        self.static_labels = static_labels
        self.binary = binary
        self.port = port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        if scrape_self:
            self.targets.setdefault("prometheus", f"127.0.0.1:{self.port}")
        self._process: subprocess.Popen[bytes] | None = None
        self._log = self.workdir / "prometheus.log"

    # -- configuration -------------------------------------------------------------------
    def write_config(self) -> Path:
        rules_dir = self.workdir / "rules"
        rules_dir.mkdir(parents=True, exist_ok=True)
        rule_paths = []
        for source in self.rule_files:
            content = yaml.safe_load(Path(source).read_text())
            for group in content["groups"]:
                group["interval"] = self.rule_interval
            target = rules_dir / Path(source).name
            target.write_text(yaml.safe_dump(content, sort_keys=False))
            rule_paths.append(str(target))
        scrape_configs = []
        for job, address in self.targets.items():
            static: dict[str, Any] = {"targets": [address]}
            if self.static_labels:
                static["labels"] = {"namespace": NAMESPACE, "pod": f"{job}-local"}
            scrape_configs.append({"job_name": job, "metrics_path": "/metrics", "static_configs": [static]})
        config = {
            "global": {
                "scrape_interval": self.scrape_interval,
                "scrape_timeout": self.scrape_interval,
                "evaluation_interval": self.rule_interval,
            },
            "rule_files": rule_paths,
            "scrape_configs": scrape_configs,
        }
        path = self.workdir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    # -- lifecycle -----------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> PrometheusHarness:
        binary = self.binary or ensure_prometheus()
        config = self.write_config()
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        with self._log.open("wb") as log:
            self._process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={data}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--storage.tsdb.retention.time=1d",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait(lambda: self._get("/-/ready", raw=True) is not None, timeout, "/-/ready")
        return self

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=5)
        self._process = None

    def __enter__(self) -> PrometheusHarness:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log(self) -> str:
        return self._log.read_text(errors="replace") if self._log.exists() else ""

    # -- HTTP API ------------------------------------------------------------------------
    def _get(self, path: str, params: Mapping[str, str] | None = None, raw: bool = False) -> Any:
        """GET the API; None when unreachable; the JSON body (also for 4xx/5xx answers)."""
        url = self.url + path + ("?" + urllib.parse.urlencode(params) if params else "")
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = response.read()
        except urllib.error.HTTPError as error:
            body = error.read()
            if raw:
                return None
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None
        return body if raw else json.loads(body)

    def _wait(self, condition: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"prometheus exited ({self._process.returncode}):\n{self.log()}")
            if condition():
                return
            time.sleep(0.2)
        raise TimeoutError(f"prometheus: {what} not reached in {timeout:.0f} s\n{self.log()}")

    def targets_health(self) -> dict[str, str]:
        """{job: health} of the active targets ("up", "down", "unknown")."""
        answer = self._get("/api/v1/targets") or {}
        active = answer.get("data", {}).get("activeTargets", [])
        return {t["labels"]["job"]: t["health"] for t in active}

    def wait_for_targets(self, timeout: float = 30.0) -> None:
        """Until every configured job has been scraped successfully."""

        def all_up() -> bool:
            health = self.targets_health()
            return all(health.get(job) == "up" for job in self.targets)

        self._wait(all_up, timeout, f"all targets up ({self.targets_health()})")

    def query(self, expr: str) -> dict[str, Any]:
        """The raw `/api/v1/query` answer for an instant query at now."""
        answer = self._get("/api/v1/query", {"query": expr})
        if answer is None:
            raise RuntimeError(f"prometheus at {self.url} did not answer")
        return answer

    def evaluate(self, expressions: Iterable[tuple[str, str]]) -> list[ExpressionResult]:
        return evaluate_expressions(self, expressions)


def evaluate_expressions(
    prometheus: PrometheusHarness, expressions: Iterable[tuple[str, str]]
) -> list[ExpressionResult]:
    """Send each (source, expr) to `/api/v1/query`: does it parse, run, return samples?"""
    results = []
    for source, expr in expressions:
        answer = prometheus.query(expr)
        if answer.get("status") == "success":
            data = answer["data"]
            if data["resultType"] == "vector":
                values = tuple(float(sample["value"][1]) for sample in data["result"])
            elif data["resultType"] == "scalar":
                values = (float(data["result"][1]),)
            else:
                values = ()
            series = len(data["result"]) if data["resultType"] in ("vector", "matrix") else 1
            results.append(
                ExpressionResult(source, expr, parses=True, has_data=series > 0, series=series, values=values)
            )
        else:
            syntax = answer.get("errorType") == "bad_data"
            results.append(
                ExpressionResult(
                    source,
                    expr,
                    parses=not syntax,
                    has_data=False,
                    error=f"{answer.get('errorType')}: {answer.get('error')}",
                )
            )
    return results


def evaluate_monitoring_expressions(
    gateway: str,
    triton: str = "127.0.0.1:8002",
    *,
    workdir: Path,
    settle_seconds: float = 10.0,
    extra_targets: Mapping[str, str] | None = None,
    expressions: Sequence[tuple[str, str]] | None = None,
) -> list[ExpressionResult]:
    """Scrape the gateway and Triton ("host:port" of their /metrics), wait, evaluate everything.

    ``settle_seconds`` after all targets are up lets rate() windows fill (1 s scrapes) and the
    recording rules run. Drive traffic through the gateway before or during that time so the
    request, latency and probability series exist. ``expressions`` defaults to
    :func:`monitoring_expressions` (dashboard + rules).
    """
    targets = {GATEWAY_JOB: gateway, TRITON_JOB: triton, **(extra_targets or {})}
    with PrometheusHarness(targets, workdir) as prometheus:
        prometheus.wait_for_targets()
        time.sleep(settle_seconds)
        return prometheus.evaluate(monitoring_expressions() if expressions is None else expressions)
