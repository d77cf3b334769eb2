"""``ecgscreen pacs run``: the AI router between a PACS and the gateway.

    PACS ──/changes or QIDO-RS──▶ feed ──▶ state (pending) ◀── C-STORE SCP (spool)
                                            │ workers
                     WADO-RS (or the spool) ▼
                          gateway POST /report ──▶ SR + SC ──▶ STOW-RS (or C-STORE)

The feed only discovers: it writes what it found to the state and moves its cursor in one
transaction. Workers take what is due from the state (new objects, and failed ones whose
backoff has passed), so a restart picks up exactly where the last run stopped. The result
UIDs depend only on the ECG and the model, so even an attempt repeated after a crash stores
the same objects again, never a second copy. Logs name an ECG by a short digest of its SOP
Instance UID, never by anything about the patient.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import logging
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import requests
from dicomweb_client import DICOMwebClient
from pydicom.uid import UID

from .destinations import CStore, StowRs, parse_dicom_url
from .feeds import OrthancChanges, PacsUnavailable, QidoByDate, is_orthanc
from .gateway_client import GatewayClient, token_from_env
from .multipart import part10
from .outcomes import Refused, Transient
from .scp import StoreSCP
from .state import Instance, State
from .telemetry import RouterMetrics

__all__ = ["RouterConfig", "Router", "ecg_key", "configure_logging"]

log = logging.getLogger("ecgscreen.pacs")

FEEDS = ("auto", "orthanc", "qido", "none")


def ecg_key(sop_instance_uid: str) -> str:
    """How logs name an ECG: a digest that says nothing about the patient."""
    return hashlib.sha256(sop_instance_uid.encode()).hexdigest()[:12]


def configure_logging(level: int = logging.INFO) -> None:
    """The router's own lines only. dicomweb-client logs UIDs at INFO and pynetdicom can
    dump data sets: both are held to warnings."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for noisy in ("dicomweb_client", "pynetdicom", "urllib3", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@dataclass(frozen=True)
class RouterConfig:
    gateway_url: str
    state_path: Path
    dicomweb_url: str | None = None  # the PACS to watch; its results go back to it
    feed: str = "auto"  # auto | orthanc | qido | none
    orthanc_url: str | None = None  # Orthanc's REST API (default: the DICOMweb URL's server)
    lookback_days: int = 2  # QIDO: studies of the last N days
    since: datetime.date | None = None  # QIDO: or from this date on
    poll_interval_s: float = 2.0
    concurrency: int = 2
    scp_port: int | None = None  # C-STORE SCP; None: no SCP
    scp_host: str = "0.0.0.0"
    ae_title: str = "ECGSCREEN"
    forward: str | None = None  # results of pushed ECGs: dicom://AET@host:port or a DICOMweb URL
    metrics_port: int | None = 9102
    metrics_host: str = "0.0.0.0"
    max_backoff_s: float = 300.0
    gateway_timeout_s: float = 60.0
    tasks: str | None = None  # comma-separated; None: every task

    def __post_init__(self) -> None:
        if self.feed not in FEEDS:
            raise ValueError(f"feed must be one of {', '.join(FEEDS)}, got {self.feed!r}")
        if self.dicomweb_url is None and self.scp_port is None:
            raise ValueError("nothing to watch: give a PACS (DICOMweb URL) or a C-STORE SCP port, or both")
        if self.scp_port is not None and self.forward is None and self.dicomweb_url is None:
            raise ValueError("pushed ECGs need a destination for their results: give --forward or a PACS")
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {self.concurrency}")


def pacs_session() -> requests.Session:
    """HTTP session for the PACS; basic authentication from ``ECGSCREEN_PACS_USERNAME`` and
    ``ECGSCREEN_PACS_PASSWORD`` (or ``ECGSCREEN_PACS_PASSWORD_FILE``) when set."""
    session = requests.Session()
    user = os.environ.get("ECGSCREEN_PACS_USERNAME", "").strip()
    password = os.environ.get("ECGSCREEN_PACS_PASSWORD", "")
    password_file = os.environ.get("ECGSCREEN_PACS_PASSWORD_FILE", "").strip()
    if not password and password_file and Path(password_file).is_file():  # the Secret is optional
        password = Path(password_file).read_text().strip()
    if user and not password:
        raise ValueError("ECGSCREEN_PACS_USERNAME is set but no ECGSCREEN_PACS_PASSWORD(_FILE)")
    if user:
        session.auth = (user, password)
    return session


class Router:
    def __init__(self, config: RouterConfig) -> None:
        self.config = config
        self.state = State(config.state_path)
        self.metrics = RouterMetrics.create()
        self.gateway = GatewayClient(config.gateway_url, token_from_env(), config.gateway_timeout_s)
        self.session = pacs_session()
        self.client: DICOMwebClient | None = None
        self.stow: StowRs | None = None
        if config.dicomweb_url:
            self.client = DICOMwebClient(config.dicomweb_url, session=self.session, timeout=30)
            self.client.set_http_retry_params(retry=False)  # the router retries, with its own backoff
            self.stow = StowRs(self.session, config.dicomweb_url)
        self.forward = self._forward_destination()
        self.feed = None
        self.scp: StoreSCP | None = None
        self._in_flight: dict[str, Future] = {}
        self._pacs_backoff = 0.0
        self._next_poll = 0.0
        self._next_gauges = 0.0

    def _forward_destination(self) -> StowRs | CStore | None:
        forward = self.config.forward
        if forward is None:
            return self.stow
        if forward.startswith("dicom://"):
            return dataclasses.replace(parse_dicom_url(forward), calling_aet=self.config.ae_title)
        if forward.startswith(("http://", "https://")):
            return StowRs(self.session, forward)
        raise ValueError(f"--forward must be dicom://AET@host:port or a DICOMweb URL, got {forward!r}")

    # -- the feed --------------------------------------------------------------------------------

    def _choose_feed(self):
        """The feed, decided once the PACS answers (``auto`` asks it whether it is Orthanc)."""
        config = self.config
        if config.dicomweb_url is None or config.feed == "none":
            return None
        orthanc_url = (
            config.orthanc_url or config.dicomweb_url.rstrip("/").removesuffix("/dicom-web")
        ).rstrip("/")
        if config.feed == "orthanc":
            return OrthancChanges(self.session, orthanc_url)
        if config.feed == "qido":
            return QidoByDate(self.client, config.lookback_days, config.since)
        try:
            self.session.get(config.dicomweb_url, timeout=5)
        except requests.RequestException:
            raise PacsUnavailable("the PACS does not answer") from None
        if is_orthanc(self.session, orthanc_url):
            log.info("PACS is Orthanc: following its change log")
            return OrthancChanges(self.session, orthanc_url)
        log.info("PACS is not Orthanc: QIDO-RS by study date, the last %d days", config.lookback_days)
        return QidoByDate(self.client, config.lookback_days, config.since)

    def poll(self) -> bool:
        """Read the feed once if it is time; True when it has more right now."""
        if (
            self.config.dicomweb_url is None
            or self.config.feed == "none"
            or time.monotonic() < self._next_poll
        ):
            return False
        try:
            if self.feed is None:
                self.feed = self._choose_feed()
            result = self.feed.poll(self.state)
        except PacsUnavailable as exc:
            self.metrics.pacs_errors.inc()
            self._pacs_backoff = min(max(1.0, 2 * self._pacs_backoff), self.config.max_backoff_s)
            self._next_poll = time.monotonic() + self._pacs_backoff
            log.warning("PACS unavailable (%s); polling again in %.0f s", exc, self._pacs_backoff)
            return False
        if self._pacs_backoff:
            log.info("PACS answers again")
        self._pacs_backoff = 0.0
        self._next_poll = time.monotonic() + (0 if result.more else self.config.poll_interval_s)
        for reason, count in result.refused.items():
            self.metrics.refused.labels(reason).inc(count)
        if result.ecgs or result.refused:
            log.info("feed=%s new_ecgs=%d refused=%d own_results_ignored=%d", self.feed.name, result.ecgs,
                     sum(result.refused.values()), result.ignored)  # fmt: skip
        return result.more

    # -- one ECG ---------------------------------------------------------------------------------

    def _fetch(self, item: Instance) -> bytes:
        if item.origin == "scp":
            try:
                return Path(item.spool_path or "").read_bytes()
            except OSError:
                raise Refused("spool_file_missing", "the received file is no longer in the spool") from None
        try:
            ds = self.client.retrieve_instance(
                item.study_uid,
                item.series_uid,
                item.sop_instance_uid,
                media_types=(("application/dicom", "*"),),
            )
        except requests.HTTPError as exc:
            if exc.response is not None and exc.response.status_code == 404:
                raise Refused("not_in_pacs", "the object is no longer in the PACS") from None
            status = exc.response.status_code if exc.response is not None else "?"
            raise Transient(f"wado_http_{status}") from None
        except requests.RequestException as exc:
            raise Transient("wado_unreachable", type(exc).__name__) from None
        return part10(ds)

    def process(self, item: Instance) -> str:
        """One attempt at one ECG; its outcome (done / refused / failed), recorded."""
        start = time.monotonic()
        key, sop = ecg_key(item.sop_instance_uid), UID(item.sop_class_uid).name
        outcome = "failed"
        try:
            data = self._fetch(item)
            body, content_type = self.gateway.report(data, self.config.tasks)
            destination = self.forward if item.origin == "scp" else self.stow
            stored = destination.store(body, content_type)
            self.state.done(item.sop_instance_uid, stored)
            self.metrics.processed.labels(item.origin).inc()
            outcome = "done"
            log.info("ecg=%s origin=%s sop=%r outcome=done objects=%d seconds=%.2f attempt=%d",
                     key, item.origin, sop, stored, time.monotonic() - start, item.attempts + 1)  # fmt: skip
        except Refused as refusal:
            self.state.refused(item.sop_instance_uid, refusal.reason)
            self.metrics.refused.labels(refusal.reason).inc()
            outcome = "refused"
            log.info(
                "ecg=%s origin=%s sop=%r outcome=refused reason=%s", key, item.origin, sop, refusal.reason
            )
        except Exception as error:  # Transient, or anything unexpected: retried with backoff
            if not isinstance(error, Transient):
                error = Transient("internal", type(error).__name__)
            reason = f"{error.reason} ({error.detail})" if error.detail else error.reason
            backoff = min(2.0 * 2**item.attempts, self.config.max_backoff_s)
            attempts = self.state.failed(item.sop_instance_uid, reason, backoff)
            self.metrics.failed.labels(error.reason).inc()
            log.warning("ecg=%s origin=%s sop=%r outcome=failed reason=%s attempt=%d retry_in_s=%.0f",
                        key, item.origin, sop, reason, attempts, backoff)  # fmt: skip
        finally:
            self.metrics.processing.observe(time.monotonic() - start)
        if outcome != "failed" and item.spool_path:
            Path(item.spool_path).unlink(missing_ok=True)
        return outcome

    # -- the loop --------------------------------------------------------------------------------

    def _update_gauges(self) -> None:
        if time.monotonic() < self._next_gauges:
            return
        self._next_gauges = time.monotonic() + 1.0
        oldest = self.state.oldest_waiting()
        self.metrics.lag.set(max(0.0, time.time() - oldest) if oldest is not None else 0.0)
        self.metrics.waiting.set(self.state.waiting())

    def start_servers(self) -> None:
        if self.config.metrics_port is not None:
            self.metrics.serve(self.config.metrics_port, self.config.metrics_host)
        if self.config.scp_port is not None:
            spool = self.config.state_path.parent / "spool"
            self.scp = StoreSCP(self.state, spool, self.config.ae_title,
                                on_refused=lambda reason: self.metrics.refused.labels(reason).inc())  # fmt: skip
            self.scp.start(self.config.scp_host, self.config.scp_port)
            log.info(
                "C-STORE SCP %s listening on %s:%d", self.config.ae_title, self.config.scp_host, self.scp.port
            )

    def run(self, stop: threading.Event, drain_timeout_s: float = 120.0) -> None:
        """Until ``stop`` is set; then finish the ECGs in progress and close."""
        self.start_servers()
        log.info("router started: gateway %s, PACS %s, %d workers", self.config.gateway_url,
                 self.config.dicomweb_url or "(none)", self.config.concurrency)  # fmt: skip
        pool = ThreadPoolExecutor(self.config.concurrency, thread_name_prefix="ecg")
        try:
            while not stop.is_set():
                more = self.poll()
                self._dispatch(pool)
                self._update_gauges()
                stop.wait(0.0 if more else 0.2)
        finally:
            log.info("router stopping: %d ECGs in progress", len(self._in_flight))
            if self.scp is not None:
                self.scp.stop()
            pool.shutdown(wait=False, cancel_futures=True)
            deadline = time.monotonic() + drain_timeout_s
            for future in list(self._in_flight.values()):
                try:
                    future.result(timeout=max(0.0, deadline - time.monotonic()))
                except Exception:  # noqa: S110 - cancelled or failed: it stays pending or failed
                    pass
            self.gateway.close()
            self.state.close()
            log.info("router stopped")

    def _dispatch(self, pool: ThreadPoolExecutor) -> None:
        for uid, future in list(self._in_flight.items()):
            if future.done():
                del self._in_flight[uid]
        room = 2 * self.config.concurrency - len(self._in_flight)
        if room <= 0:
            return
        for item in self.state.due(limit=room + len(self._in_flight)):
            if item.sop_instance_uid in self._in_flight:
                continue
            self._in_flight[item.sop_instance_uid] = pool.submit(self.process, item)
            room -= 1
            if room == 0:
                break
