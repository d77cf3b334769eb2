"""How the router finds new objects in a PACS.

* :class:`OrthancChanges`: Orthanc's ``/changes`` log, read from the last sequence number
  the router saw (kept in the state file). Every new instance is looked at once, in order.
* :class:`QidoByDate`: any DICOMweb PACS. QIDO-RS for instances with modality ECG in studies
  of the last days, repeated each poll; the state file says which ones are known already.

A poll writes what it found to the state (ECGs as ``pending``, other objects as ``refused``)
and moves its cursor in the same transaction; the router's workers take it from there.
A PACS that cannot be reached raises :class:`PacsUnavailable`; nothing is recorded then.
"""

from __future__ import annotations

import datetime
import logging
import time
from dataclasses import dataclass, field

import requests
from dicomweb_client import DICOMwebClient
from pydicom.dataset import Dataset

from .selection import ECG, NOT_ECG, OWN, classify
from .state import State

__all__ = ["Found", "PollResult", "PacsUnavailable", "OrthancChanges", "QidoByDate", "is_orthanc"]

log = logging.getLogger("ecgscreen.pacs")


class PacsUnavailable(Exception):
    """The PACS did not answer (down, restarting, overloaded): try again later."""


@dataclass(frozen=True)
class Found:
    """What a feed knows about a new object, before fetching it."""

    sop_instance_uid: str
    study_uid: str
    series_uid: str
    sop_class_uid: str
    modality: str
    manufacturer: str
    series_description: str
    arrived: float  # epoch seconds, on this machine's clock


@dataclass
class PollResult:
    ecgs: int = 0  # new ECGs taken on
    refused: dict[str, int] = field(default_factory=dict)  # reason -> count
    ignored: int = 0  # our own results
    more: bool = False  # the feed has more right now: poll again without waiting


def _record(state: State, found: list[Found], origin: str, result: PollResult) -> None:
    """Take on ``found`` (inside the caller's transaction)."""
    for item in found:
        verdict = classify(item.sop_class_uid, item.modality, item.manufacturer, item.series_description)
        if verdict.kind == OWN:
            result.ignored += 1
            continue
        added = state.add(
            item.sop_instance_uid, item.study_uid, item.series_uid, item.sop_class_uid, origin, item.arrived,
            refused_reason=None if verdict.kind == ECG else f"{NOT_ECG}: {verdict.detail}",
        )  # fmt: skip
        if not added:
            continue
        if verdict.kind == ECG:
            result.ecgs += 1
        else:
            result.refused[NOT_ECG] = result.refused.get(NOT_ECG, 0) + 1


def _get(session: requests.Session, url: str, timeout: float, **params) -> requests.Response | None:
    """GET; ``PacsUnavailable`` for a dead or failing server, None for a 404."""
    try:
        response = session.get(url, params=params or None, timeout=timeout)
    except requests.RequestException as exc:
        raise PacsUnavailable(f"{type(exc).__name__} on {url.split('?')[0]}") from None
    if response.status_code == 404:
        return None
    if response.status_code >= 400:
        raise PacsUnavailable(f"HTTP {response.status_code} from the PACS")
    return response


def _get_json(session: requests.Session, url: str, timeout: float, **params):
    response = _get(session, url, timeout, **params)
    return None if response is None else response.json()


def is_orthanc(session: requests.Session, rest_url: str, timeout: float = 5.0) -> bool:
    """True when ``rest_url`` is an Orthanc server's REST API."""
    try:
        system = _get_json(session, f"{rest_url}/system", timeout)
    except (PacsUnavailable, ValueError):
        return False
    return isinstance(system, dict) and "ApiVersion" in system and "DicomAet" in system


def _orthanc_time(text: str) -> datetime.datetime:
    return datetime.datetime.strptime(text[:15], "%Y%m%dT%H%M%S")


class OrthancChanges:
    """Orthanc's change log, from the state's cursor on."""

    name = "orthanc"

    def __init__(self, session: requests.Session, rest_url: str, batch: int = 100, timeout: float = 20.0):
        self.session = session
        self.rest_url = rest_url.rstrip("/")
        self.batch = batch
        self.timeout = timeout

    def _get(self, path: str, **params):
        return _get_json(self.session, self.rest_url + path, self.timeout, **params)

    def poll(self, state: State) -> PollResult:
        since = int(state.cursor(self.name, "0"))
        changes = self._get("/changes", since=since, limit=self.batch)
        if changes is None:
            raise PacsUnavailable("the PACS has no /changes (not Orthanc?)")
        if not changes["Changes"] and changes["Last"] < since:
            # Orthanc's log restarted (a new database): read it from its beginning.
            log.warning(
                "the PACS change log restarted (last %d < cursor %d); reading it again",
                changes["Last"],
                since,
            )
            state.set_cursor(self.name, "0")
            return PollResult(more=True)
        # Orthanc stamps changes with its own local clock: translate to ours.
        now = _get(self.session, f"{self.rest_url}/tools/now-local", self.timeout)
        offset = time.time() - _orthanc_time(now.text if now is not None else "").timestamp()
        found = []
        for change in changes["Changes"]:
            if change["ChangeType"] != "NewInstance":
                continue
            tags = self._get(f"/instances/{change['ID']}/tags", short="")
            if tags is None:  # deleted since: nothing to do
                continue
            found.append(
                Found(
                    sop_instance_uid=tags.get("0008,0018", ""),
                    study_uid=tags.get("0020,000d", ""),
                    series_uid=tags.get("0020,000e", ""),
                    sop_class_uid=tags.get("0008,0016", ""),
                    modality=tags.get("0008,0060", "") or "",
                    manufacturer=tags.get("0008,0070", "") or "",
                    series_description=tags.get("0008,103e", "") or "",
                    arrived=_orthanc_time(change["Date"]).timestamp() + offset,
                )
            )
        result = PollResult(more=not changes["Done"])
        with state.transaction():
            _record(state, found, self.name, result)
            state.set_cursor(self.name, str(changes["Last"]))
        return result


def _first(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword, "")
    return str(value) if value is not None else ""


class QidoByDate:
    """QIDO-RS: instances with modality ECG in studies from ``lookback_days`` ago (or
    ``since``) on. Each poll lists them all; the state says which are new."""

    name = "qido"
    FIELDS = ("SOPClassUID", "Modality", "Manufacturer", "SeriesDescription", "StudyDate")

    def __init__(
        self,
        client: DICOMwebClient,
        lookback_days: int = 2,
        since: datetime.date | None = None,
        page: int = 500,
    ):
        self.client = client
        self.lookback_days = lookback_days
        self.since = since
        self.page = page

    def _start(self) -> datetime.date:
        window = datetime.date.today() - datetime.timedelta(days=self.lookback_days)
        return min(window, self.since) if self.since else window

    def poll(self, state: State) -> PollResult:
        filters = {"Modality": "ECG", "StudyDate": f"{self._start():%Y%m%d}-"}
        found, offset, now = [], 0, time.time()
        while True:
            try:
                page = self.client.search_for_instances(
                    search_filters=filters, fields=self.FIELDS, limit=self.page, offset=offset
                )
            except requests.HTTPError as exc:
                raise PacsUnavailable(f"QIDO-RS answered HTTP {exc.response.status_code}") from None
            except requests.RequestException as exc:
                raise PacsUnavailable(f"QIDO-RS failed ({type(exc).__name__})") from None
            for item in page:
                ds = Dataset.from_json(item)
                found.append(
                    Found(
                        sop_instance_uid=_first(ds, "SOPInstanceUID"),
                        study_uid=_first(ds, "StudyInstanceUID"),
                        series_uid=_first(ds, "SeriesInstanceUID"),
                        sop_class_uid=_first(ds, "SOPClassUID"),
                        modality=_first(ds, "Modality"),
                        manufacturer=_first(ds, "Manufacturer"),
                        series_description=_first(ds, "SeriesDescription"),
                        arrived=now,
                    )
                )
            if len(page) < self.page:
                break
            offset += len(page)
        known = state.known([item.sop_instance_uid for item in found])
        result = PollResult()
        with state.transaction():
            _record(state, [item for item in found if item.sop_instance_uid not in known], self.name, result)
            state.set_cursor(self.name, datetime.datetime.now().isoformat(timespec="seconds"))
        return result
