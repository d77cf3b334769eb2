"""Alert, recording and adapter rules and the Grafana dashboard: valid PromQL, tested alerts,
contract metric names, and a real Prometheus that evaluates every expression.

promtool and prometheus come from Debian's `prometheus` package, installed by
scripts/ensure-debian-packages.sh when missing.
"""

from __future__ import annotations

import importlib.util
import json
import re
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_harness import (
    DASHBOARD,
    GATEWAY_JOB,
    RULE_FILES,
    TRITON_JOB,
    PrometheusHarness,
    dashboard_expressions,
    ensure_prometheus,
    evaluate_monitoring_expressions,
    monitoring_expressions,
    rule_expressions,
    substitute_grafana_variables,
)

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "k8s" / "monitoring"
ADAPTER_RULES = MONITORING / "prometheus-adapter-rules.yaml"
RULE_TESTS = sorted((MONITORING / "rules" / "tests").glob("*.test.yaml"))
_spec = importlib.util.spec_from_file_location("render_k8s", REPO / "scripts" / "render_k8s.py")
render_k8s = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(render_k8s)

# The metric-name contract (DESIGN + issue 7). Histograms by base name.
GATEWAY_METRICS = {
    "ecgscreen_requests_total",
    "ecgscreen_preprocess_refusals_total",
    "ecgscreen_triton_latency_seconds",
    "ecgscreen_request_latency_seconds",
    "ecgscreen_predicted_probability",
    "ecgscreen_positive_calls_total",
    "ecgscreen_predictions_total",
    "ecgscreen_canary_total",
}
BENTOML_METRICS = {
    "bentoml_service_request_total",
    "bentoml_service_request_duration_seconds",
    "bentoml_service_request_in_progress",
}
TRITON_METRICS = {
    "nv_inference_request_success",
    "nv_inference_request_failure",
    "nv_inference_count",
    "nv_inference_exec_count",
    "nv_inference_request_duration_us",
    "nv_inference_queue_duration_us",
    "nv_inference_compute_infer_duration_us",
    "nv_inference_request_summary_us",
    # Not in the issue's list, but in Triton 2.51's exposition (checked against the binary).
    "nv_inference_pending_request_count",
    "nv_gpu_utilization",
    "nv_gpu_memory_used_bytes",
    "nv_gpu_memory_total_bytes",
    "nv_cpu_utilization",
    "nv_cpu_memory_used_bytes",
}
# The PACS router's own (ecgscreen.pacs.telemetry).
ROUTER_METRICS = {
    "ecgscreen_pacs_processed_total",
    "ecgscreen_pacs_refused_total",
    "ecgscreen_pacs_failed_total",
    "ecgscreen_pacs_lag_seconds",
    "ecgscreen_pacs_waiting",
    "ecgscreen_pacs_processing_seconds",
    "ecgscreen_pacs_pacs_errors_total",
}
KUBE_STATE_METRICS = {
    "kube_pod_status_ready",
    "kube_pod_status_phase",
    "kube_pod_container_status_restarts_total",
    "kube_deployment_status_replicas_available",
    "kube_horizontalpodautoscaler_status_current_replicas",
    "kube_horizontalpodautoscaler_status_desired_replicas",
    "kube_horizontalpodautoscaler_spec_max_replicas",
}
PROMQL_WORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "offset", "inf", "nan",
}  # fmt: skip


def recorded_names() -> set[str]:
    return {source.split(": ", 1)[1] for source, _ in rule_expressions() if source.startswith("record: ")}


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects (no PromQL parser needed for our style)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range windows
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][\w:]*)\s*(\()?", text):
        word, call = match.group(1), match.group(2)
        if call or word.lower() in PROMQL_WORDS or re.fullmatch(r"\d+[smhdwy]", word):
            continue
        names.add(word)
    return names


def base_name(name: str) -> str:
    return re.sub(r"_(bucket|sum|count)$", "", name)


# -- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def promtool() -> str:
    ensure_prometheus()
    return "promtool"


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, check=False)


# -- rule files -------------------------------------------------------------------------------
def test_promtool_checks_the_rule_files(promtool):
    result = run_promtool("check", "rules", *map(str, RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("test_file", RULE_TESTS, ids=lambda p: p.name)
def test_alerts_fire_when_they_should(promtool, test_file):
    """promtool's unit tests: each alert fires on its situation and not on a healthy one."""
    result = run_promtool("test", "rules", str(test_file))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_unit_test():
    tested = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            tested |= {t["alertname"] for t in case.get("alert_rule_test", []) if t.get("exp_alerts")}
    alerts = {source.split(": ", 1)[1] for source, _ in rule_expressions() if source.startswith("alert: ")}
    # Left to the harness / README: pure kube-state-metrics and GPU thresholds.
    untested = alerts - tested
    assert untested <= {
        "EcgscreenGatewayDown",
        "EcgscreenExplainLatencyP95High",
        "EcgscreenTritonTargetDown",
        "EcgscreenNoReadyTriton",
        "EcgscreenPreprocessRefusalsHigh",
        "EcgscreenGPUMemoryHigh",
        "EcgscreenAutoscalerAtMax",
    }, untested


def test_prometheusrule_carries_exactly_the_rule_files():
    committed = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
    groups = [g for path in RULE_FILES for g in yaml.safe_load(path.read_text())["groups"]]
    assert committed["spec"]["groups"] == groups
    assert committed == render_k8s.prometheusrule()


def test_alerts_are_documented():
    readme = (REPO / "k8s" / "README.md").read_text()
    for source, _ in rule_expressions():
        if source.startswith("alert: "):
            name = source.split(": ", 1)[1]
            assert f"#### {name}" in readme, f"{name} has no section in k8s/README.md"
    for group in (g for path in RULE_FILES for g in yaml.safe_load(path.read_text())["groups"]):
        for rule in group["rules"]:
            if "alert" in rule:
                assert rule["labels"]["severity"] in {"critical", "warning", "info"}
                assert {"summary", "description", "runbook_url"} <= set(rule["annotations"])
                assert rule["annotations"]["runbook_url"].endswith("#" + rule["alert"].lower())


# -- adapter rule -----------------------------------------------------------------------------
def adapter_rule() -> dict:
    (rule,) = yaml.safe_load(ADAPTER_RULES.read_text())["rules"]["custom"]
    return rule


def test_adapter_rule_is_the_recording_rule():
    rule = adapter_rule()
    as_recorded = (
        rule["metricsQuery"].replace("<<.GroupBy>>", "namespace, pod").replace(",<<.LabelMatchers>>", "")
    )
    recorded = dict(rule_expressions())["record: pod:ecgscreen_triton_queue_us_per_request:rate1m"]
    assert as_recorded == recorded
    assert "rate(nv_inference_queue_duration_us{" in rule["metricsQuery"]
    assert "clamp_min(" in rule["metricsQuery"] and "1e-9" in rule["metricsQuery"]
    assert rule["resources"]["overrides"] == {
        "namespace": {"resource": "namespace"},
        "pod": {"resource": "pod"},
    }
    assert re.fullmatch(rule["name"]["matches"], "nv_inference_queue_duration_us")


# -- every expression parses ------------------------------------------------------------------
def adapter_expressions() -> list[tuple[str, str]]:
    rule = adapter_rule()
    query = (
        rule["metricsQuery"]
        .replace("<<.GroupBy>>", "pod")
        .replace("<<.LabelMatchers>>", 'namespace="ecgscreen",pod=~"ecgscreen-triton-.*"')
    )
    return [("adapter: seriesQuery", rule["seriesQuery"]), ("adapter: metricsQuery", query)]


def test_every_expression_parses_with_promtool(promtool, tmp_path):
    """Each dashboard target (variables substituted) and adapter query as a recording rule."""
    expressions = dashboard_expressions() + adapter_expressions()
    assert not [e for _, e in expressions if "$" in e or "<<" in e], "unsubstituted variable"
    rules = [{"record": f"ecgscreen:check:{i}", "expr": expr} for i, (_, expr) in enumerate(expressions)]
    path = tmp_path / "synthesized.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard-and-adapter", "rules": rules}]}))
    result = run_promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def test_promtool_rejects_a_broken_expression(promtool, tmp_path):
    path = tmp_path / "broken.rules.yaml"
    path.write_text(
        yaml.safe_dump({"groups": [{"name": "g", "rules": [{"record": "a:b", "expr": "sum(rate(x[1m])"}]}]})
    )
    assert run_promtool("check", "rules", str(path)).returncode != 0


def test_grafana_variables_are_substituted():
    expr = 'sum(rate(x{namespace=~"$namespace"}[$__rate_interval])) / ${namespace} [[__range]]'
    assert substitute_grafana_variables(expr) == 'sum(rate(x{namespace=~".*"}[1m])) / .* 1h'
    with pytest.raises(KeyError):
        substitute_grafana_variables("rate(x[$unknown])")


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (le) (rate(a_bucket{x="y"}[5m])) / on (le) b', {"a_bucket", "b"}),
        ("histogram_quantile(0.95, sum by (le) (rate(c_bucket[1m]))) > 2 and d offset 5m", {"c_bucket", "d"}),
        ("task:rate:ratio1h / clamp_min(e, 0.01)", {"task:rate:ratio1h", "e"}),
    ],
)
def test_metric_name_extraction(expr, names):
    assert metric_names(expr) == names


def test_only_contract_metrics_are_used():
    known = (
        GATEWAY_METRICS
        | BENTOML_METRICS
        | TRITON_METRICS
        | ROUTER_METRICS
        | KUBE_STATE_METRICS
        | {"up"}
        | recorded_names()
    )
    for source, expr in monitoring_expressions() + adapter_expressions():
        unknown = {n for n in metric_names(expr) if base_name(n) not in known and n not in known}
        assert not unknown, f"{source}: {unknown} not in the metric contract"


# -- dashboard --------------------------------------------------------------------------------
def all_panels(dashboard: dict) -> list[dict]:
    panels = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def test_dashboard_is_well_formed():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert (
        variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    )
    panels = all_panels(dashboard)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    occupied = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & occupied, f"{panel['title']} overlaps another panel"
        occupied |= cells
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel.get("description"), panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert panel["targets"] and len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            if 'namespace=~"$namespace"' not in target["expr"]:
                pytest.fail(f"{panel['title']}: {target['expr']} ignores the namespace variable")


def test_dashboard_has_the_required_panels():
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [p for p in all_panels(dashboard) if p["type"] != "row"]

    def exprs(panel):
        return " ".join(t["expr"] for t in panel["targets"])

    def find(condition, what):
        found = [p for p in panels if condition(p)]
        assert found, f"no panel for {what}"
        return found

    find(
        lambda p: "rate(ecgscreen_requests_total" in exprs(p) and "by (endpoint)" in exprs(p), "request rate"
    )
    find(lambda p: "by (outcome)" in exprs(p), "requests by outcome")
    find(lambda p: "by (reason)" in exprs(p) and "preprocess_refusals" in exprs(p), "refusals by reason")
    for metric in ("ecgscreen_request_latency_seconds_bucket", "ecgscreen_triton_latency_seconds_bucket"):
        (panel,) = find(lambda p, m=metric: m in exprs(p), metric)
        quantiles = {re.search(r"histogram_quantile\(([\d.]+)", t["expr"]).group(1) for t in panel["targets"]}
        assert quantiles == {"0.5", "0.95", "0.99"}
    find(lambda p: "nv_inference_queue_duration_us" in exprs(p), "queue time")
    find(
        lambda p: re.search(r"nv_inference_count.*/.*nv_inference_exec_count", exprs(p)), "average batch size"
    )
    find(
        lambda p: "ecgscreen_positive_calls_total" in exprs(p) and "ecgscreen_predictions_total" in exprs(p),
        "positive rate",
    )
    heatmaps = find(lambda p: p["type"] == "heatmap", "probability heatmap")
    assert {re.search(r'task="(\w+)"', exprs(p)).group(1) for p in heatmaps} == {"scar", "lvef"}
    for heatmap in heatmaps:
        (target,) = heatmap["targets"]
        assert "ecgscreen_predicted_probability_bucket" in target["expr"] and target["format"] == "heatmap"
    find(lambda p: "nv_gpu_utilization" in exprs(p), "GPU utilisation")
    find(
        lambda p: "nv_gpu_memory_used_bytes" in exprs(p) and "nv_gpu_memory_total_bytes" in exprs(p),
        "GPU memory",
    )


def test_dashboard_panels_are_documented():
    readme = (REPO / "k8s" / "README.md").read_text()
    for panel in all_panels(json.loads(DASHBOARD.read_text())):
        if panel["type"] != "row":
            assert f"**{panel['title']}**" in readme, (
                f"panel {panel['title']!r} not described in k8s/README.md"
            )


# -- a real Prometheus evaluates everything ---------------------------------------------------
# Triton 2.51's exposition as its /metrics serves it (families, labels and order copied from
# the real server), with counters that grow with every scrape.
TRITON_MODELS = ("ecg_screening", "ecg_preprocess", "ecg_multitask")


def triton_exposition(n: int) -> str:
    lines = []
    for model in TRITON_MODELS:
        labels = f'model="{model}",version="1"'
        lines += [
            f"nv_inference_request_success{{{labels}}} {20 * n}",
            *(f'nv_inference_request_failure{{model="{model}",reason="{r}",version="1"}} {n if r == "BACKEND" else 0}'
              for r in ("OTHER", "BACKEND", "CANCELED", "REJECTED")),
            f"nv_inference_count{{{labels}}} {20 * n}",
            f"nv_inference_exec_count{{{labels}}} {5 * n}",
            f"nv_inference_request_duration_us{{{labels}}} {20 * n * 40000}",
            f"nv_inference_queue_duration_us{{{labels}}} {20 * n * 3000}",
            f"nv_inference_compute_infer_duration_us{{{labels}}} {5 * n * 30000}",
            f"nv_inference_pending_request_count{{{labels}}} {n % 3}",
            f"nv_inference_request_summary_us_count{{{labels}}} {20 * n}",
            f"nv_inference_request_summary_us_sum{{{labels}}} {20 * n * 40000}",
            *(f'nv_inference_request_summary_us{{model="{model}",version="1",quantile="{q}"}} {40000 + 1000 * i}'
              for i, q in enumerate(("0.5", "0.9", "0.95", "0.99", "0.999"))),
        ]  # fmt: skip
    gpu = 'gpu_uuid="GPU-00000000-0000-0000-0000-000000000000"'
    lines += [
        f"nv_gpu_utilization{{{gpu}}} 0.{n % 10}",
        f"nv_gpu_memory_total_bytes{{{gpu}}} 85899345920",
        f"nv_gpu_memory_used_bytes{{{gpu}}} {2_000_000_000 + n}",
        "nv_cpu_utilization 0.25",
        "nv_cpu_memory_total_bytes 25276510208",
        f"nv_cpu_memory_used_bytes {442781696 + n}",
    ]
    return "\n".join(lines) + "\n"


class FakeTriton(BaseHTTPRequestHandler):
    scrapes = 0

    def do_GET(self):  # noqa: N802 (http.server's name)
        type(self).scrapes += 1
        body = triton_exposition(type(self).scrapes).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class FakeGateway:
    """The gateway's metric contract on a prometheus_client registry, with steady traffic."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.requests = Counter(
            "requests", "", ["endpoint", "input_format", "outcome"], namespace="ecgscreen", registry=registry
        )
        self.refusals = Counter(
            "preprocess_refusals", "", ["reason"], namespace="ecgscreen", registry=registry
        )
        self.triton_latency = Histogram(
            "triton_latency_seconds", "", namespace="ecgscreen", registry=registry
        )
        self.latency = Histogram(
            "request_latency_seconds", "", ["endpoint"], namespace="ecgscreen", registry=registry
        )
        buckets = [round(0.1 * i, 1) for i in range(1, 11)]
        self.probability = Histogram(
            "predicted_probability", "", ["task"], namespace="ecgscreen", buckets=buckets, registry=registry
        )
        self.positives = Counter("positive_calls", "", ["task"], namespace="ecgscreen", registry=registry)
        self.predictions = Counter("predictions", "", ["task"], namespace="ecgscreen", registry=registry)
        labels = ["endpoint", "service_name", "service_version", "http_response_code"]
        self.http = Counter("request", "", labels, namespace="bentoml_service", registry=registry)
        self.http_duration = Histogram(
            "request_duration_seconds", "", labels, namespace="bentoml_service", registry=registry
        )
        self.in_progress = Gauge(
            "request_in_progress", "", labels[:3], namespace="bentoml_service", registry=registry
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._traffic, daemon=True)

    def _traffic(self) -> None:
        i = 0
        while not self._stop.is_set():
            i += 1
            endpoint = "/predict" if i % 4 else "/explain"
            outcome = "ok" if i % 10 else "bad_input"
            self.requests.labels(endpoint, "png" if i % 3 else "pdf", outcome).inc()
            self.latency.labels(endpoint).observe(0.2 + (i % 7) / 10)
            self.triton_latency.observe(0.05 + (i % 5) / 100)
            self.http.labels(endpoint, "ecgscreen", "0.1.0", "200" if outcome == "ok" else "400").inc()
            self.http_duration.labels(endpoint, "ecgscreen", "0.1.0", "200").observe(0.25)
            self.in_progress.labels(endpoint, "ecgscreen", "0.1.0").set(i % 3)
            if outcome == "bad_input":
                self.refusals.labels("not_an_ecg").inc()
            for task, p in (("scar", (i % 10) / 10 + 0.05), ("lvef", (i % 4) / 4 + 0.1)):
                self.probability.labels(task).observe(p)
                self.predictions.labels(task).inc()
                if p >= 0.5:
                    self.positives.labels(task).inc()
            self._stop.wait(0.02)

    def start(self, port: int):
        server, _ = start_http_server(port, addr="127.0.0.1", registry=self.registry)
        self._thread.start()
        return server

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@pytest.fixture(scope="module")
def fake_targets(promtool):
    """A prometheus_client gateway with steady traffic and a Triton-shaped /metrics."""
    gateway = FakeGateway()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        gateway_port = sock.getsockname()[1]
    gateway_server = gateway.start(gateway_port)
    triton_server = ThreadingHTTPServer(("127.0.0.1", 0), FakeTriton)
    threading.Thread(target=triton_server.serve_forever, daemon=True).start()
    yield {
        GATEWAY_JOB: f"127.0.0.1:{gateway_port}",
        TRITON_JOB: f"127.0.0.1:{triton_server.server_address[1]}",
    }
    gateway.stop()
    gateway_server.shutdown()
    triton_server.shutdown()


EXPECTED_WITH_DATA = (
    "dashboard: Request rate by endpoint [A]",
    "dashboard: Requests by outcome [A]",
    "dashboard: Gateway latency p50 / p95 / p99 [B]",
    "dashboard: Triton call latency p50 / p95 / p99 (seen by the gateway) [C]",
    "dashboard: Queue time per request (HPA signal) [A]",
    "dashboard: Predicted probability over time: myocardial scar [A]",
    "dashboard: Positive rate per task [B]",
    "dashboard: GPU memory [B]",
    "record: pod:ecgscreen_triton_queue_us_per_request:rate1m",
    "adapter: metricsQuery",
    "alert: EcgscreenTritonInferenceFailures",
)


@pytest.mark.integration
def test_harness_evaluates_every_expression_against_real_prometheus(fake_targets, tmp_path):
    """Prometheus scrapes itself, a prometheus_client gateway and a Triton-shaped exposition."""
    expressions = monitoring_expressions() + adapter_expressions()
    with PrometheusHarness(fake_targets, tmp_path, scrape_self=True) as prometheus:
        prometheus.wait_for_targets()
        assert prometheus.query("prometheus_build_info")["data"]["result"], "self-scrape"
        deadline = time.monotonic() + 60
        while True:  # rate() windows filled and every recording rule evaluated
            results = prometheus.evaluate(expressions)
            has = {r.source for r in results if r.has_data}
            settled = {
                "record: task:ecgscreen_positive_rate:ratio7d",
                "dashboard: Average batch size [A]",
                # rate(...[5m]) over a few seconds of samples: needs > 3 failures.
                "alert: EcgscreenTritonInferenceFailures",
                *EXPECTED_WITH_DATA,
            }
            if settled <= has and all(r.has_data for r in results if r.source.startswith("record: ")):
                break
            assert time.monotonic() < deadline, [r for r in results if not r.has_data]
            time.sleep(1)
        broken = prometheus.evaluate([("broken", "sum(rate(x[1m])"), ("mismatch", "up + on() up")])

    failures = [r for r in results if not r.ok]
    assert not failures, failures
    by_source = {r.source: r for r in results}
    no_data = sorted(r.source for r in results if not r.has_data)
    # Every dashboard panel has data except what needs kube-state-metrics or the 7-day history,
    # and the PACS router's (no router here: tests/pacs/test_pacs_router.py has a real
    # Prometheus scrape the real router for them).
    for source in no_data:
        if source.startswith("dashboard: ") and not source.startswith("dashboard: PACS router"):
            assert source in {"dashboard: Replicas [A]", "dashboard: Replicas [B]"}, source
    assert by_source["dashboard: Replicas [C]"].has_data, "up{job=...} of both targets"
    for source in EXPECTED_WITH_DATA:
        assert by_source[source].has_data, source
    # Healthy fake targets: the "down" alerts stay silent.
    assert not by_source["alert: EcgscreenTritonDown"].has_data
    assert not by_source["alert: EcgscreenGatewayDown"].has_data
    # The fake Triton queues every ecg_multitask request for 3000 us: the HPA metric says so.
    assert by_source["adapter: metricsQuery"].values == pytest.approx((3000.0,))
    assert by_source["record: pod:ecgscreen_triton_queue_us_per_request:rate1m"].values == pytest.approx(
        (3000.0,)
    )
    assert by_source["dashboard: Average batch size [A]"].values == pytest.approx((4.0,) * 3)
    assert not broken[0].parses and broken[0].error.startswith("bad_data")
    assert broken[1].parses and broken[1].error and broken[1].error.startswith("execution")


@pytest.mark.integration
def test_one_call_wrapper_for_the_end_to_end_test(fake_targets, tmp_path):
    """What the gateway + Triton end-to-end test will call, on the fake targets."""
    results = evaluate_monitoring_expressions(
        gateway=fake_targets[GATEWAY_JOB], triton=fake_targets[TRITON_JOB], workdir=tmp_path, settle_seconds=4
    )
    assert len(results) == len(monitoring_expressions())
    assert all(r.ok for r in results), [r for r in results if not r.ok]
    by_source = {r.source: r for r in results}
    assert by_source["dashboard: Request rate by endpoint [A]"].has_data
    assert by_source["record: pod:ecgscreen_triton_queue_us_per_request:rate1m"].values == pytest.approx(
        (3000.0,)
    )
