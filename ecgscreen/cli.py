"""The ``ecgscreen`` command line. The CLI owns the terminal: rich output, progress bars."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from .contract import CANONICAL_SIZE, ENSEMBLE_INPUT, ENSEMBLE_NAME, MODEL_NAME
from .leads import LAYOUTS

if TYPE_CHECKING:
    from .card import ModelCard

# Help and usage errors in click's plain text: typer's rich panels wrap a message at the
# terminal's width, inside a path too ("file '/a/lo│ng/path' does not exist").
app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="ECG-image screening: myocardial scar and LVEF<50 from a 12-lead ECG picture. "
    "Research use only, not for diagnosis.",
)
console = Console(stderr=True)


@app.callback()
def main() -> None:
    """ECG-image screening (research use only, not for diagnosis)."""


def progress_bar(redirect_stdout: bool = True) -> Progress:
    """A progress bar on stderr. ``redirect_stdout``: print()ed lines go above the bar (on the
    terminal); turn it off when stdout is a pipe, so those lines reach the pipe."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        redirect_stdout=redirect_stdout,
    )


def _split_list(value: str | None, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    if not value:
        return allowed
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    unknown = [v for v in items if v not in allowed]
    if unknown:
        raise typer.BadParameter(f"unknown {what} {', '.join(unknown)}; choose from {', '.join(allowed)}")
    return items


@app.command()
def synth(
    n: int = typer.Option(..., "--n", min=1, help="Number of ECGs to write."),
    seed: int = typer.Option(0, help="Random seed: the same seed writes the same dataset."),
    out: Path = typer.Option(..., help="Output folder (files and labels.csv)."),
    difficulty: str = typer.Option("standard", help="easy | standard | hard"),
    formats: str = typer.Option(
        None, help="Comma-separated subset of: png,jpeg,pdf,dcm-pdf,dcm-sc,dcm-waveform"
    ),
    layouts: str = typer.Option(None, help="Comma-separated subset of: 3x4,3x4+1,3x4+2,3x4+3,6x2,6x2+1,12x1"),
    grids: str = typer.Option(None, help="Comma-separated subset of: red,pink,green,none"),
    workers: int = typer.Option(0, help="Worker processes (0: one per core)."),
    save_signals: bool = typer.Option(False, help="Also write each raw signal as signals/NNNNNN.npy (mV)."),
    masks: bool = typer.Option(False, help="Also write class and lead masks per raster (masks.json)."),
) -> None:
    """Write N synthetic 12-lead ECGs (printouts, PDFs, DICOM) with their ground truth."""
    from .synth.cohort import DIFFICULTIES
    from .synth.generate import FORMATS, generate
    from .synth.printout import GRIDS

    if difficulty not in DIFFICULTIES:
        raise typer.BadParameter(f"unknown difficulty {difficulty!r}; choose from {', '.join(DIFFICULTIES)}")
    start = time.perf_counter()
    with progress_bar() as bar:
        task = bar.add_task("synthesizing", total=n)
        labels = generate(
            n, seed, out, difficulty,
            formats=_split_list(formats, FORMATS, "format"),
            layouts=_split_list(layouts, LAYOUTS, "layout"),
            grids=_split_list(grids, GRIDS, "grid"),
            workers=workers or None,
            save_signals=save_signals,
            masks=masks,
            progress=lambda k: bar.advance(task, k),
        )  # fmt: skip
    elapsed = time.perf_counter() - start
    console.print(f"wrote {n} ECGs and {labels} in {elapsed:.1f} s ({n / elapsed:.1f}/s)")


@app.command()
def preprocess(
    files: list[Path] = typer.Argument(
        ...,
        exists=True,
        dir_okay=False,
        help="ECG files (PNG, JPEG, TIFF, BMP, GIF, WebP, HEIC, PDF, DICOM).",
    ),
    out: Path = typer.Option(..., help="Folder for the canonical model inputs (PNG)."),
    size: int = typer.Option(CANONICAL_SIZE, help="Canonical image size in pixels."),
    reading: Path | None = typer.Option(
        None,
        help="Folder for the reading pictures (NAME.reading.png): the traces read, drawn over the page "
        "and coloured by each lead's status; written for refused readings too.",
    ),
) -> None:
    """Write each file's canonical model input as PNG and print its info as a JSON line.

    This is how to debug an archive: look at the PNGs (and with --reading, at what was read
    off each page), read the layout, rotation, grid, quality, each lead's status and the
    warnings. Refused files print their reason and the run goes on (a failure of intake
    itself on a file is reported for it as `internal`); the exit code is 1 if any was.
    """
    import json
    import time

    from PIL import Image

    from .imaging.pipeline import read_page, to_canonical
    from .imaging.reading_picture import reading_png

    out.mkdir(parents=True, exist_ok=True)
    if reading is not None:
        reading.mkdir(parents=True, exist_ok=True)
    refused = 0
    for path in files:
        try:
            start = time.perf_counter()
            read = read_page(path.read_bytes())
            if reading is not None:
                (reading / f"{path.stem}.reading.png").write_bytes(reading_png(read))
            result = to_canonical(read, size, start)
        except Exception as exc:  # a refusal; anything else is a bug, reported the same way
            refused += 1
            print(json.dumps({"file": str(path), **_file_error(exc, "preprocessing").to_dict()}), flush=True)
            continue
        target = out / f"{path.stem}.png"
        Image.fromarray(result.canonical).save(target)
        print(json.dumps({"file": str(path), "canonical": str(target), **result.info}))
    if refused:
        console.print(f"[red]{refused} of {len(files)} files refused[/red]")
        raise typer.Exit(1)


def _file_error(exc: Exception, doing: str):
    """What one file of a batch gets when it fails: its refusal (``IntakeError``), a file that
    cannot be read (``file_unreadable``), or ``internal`` for anything else (a bug: the run goes on)."""
    from .imaging.errors import INTERNAL, IntakeError

    if isinstance(exc, IntakeError):
        return exc
    if isinstance(exc, OSError):
        return _Unreadable(f"the file cannot be read ({exc.strerror or type(exc).__name__})")
    return IntakeError(INTERNAL, f"{doing} failed unexpectedly ({type(exc).__name__}); please report it")


class _Unreadable:
    """A batch file the system could not read (gone, no permission): not intake's refusal."""

    reason, status = "file_unreadable", 400  # not the judge's `unreadable` (leads read implausibly)

    def __init__(self, message: str) -> None:
        self.message = message

    def to_dict(self) -> dict[str, object]:
        return {"error": self.reason, "detail": self.message, "status": self.status}


def _output_stems(files: list[Path], out: Path) -> list[Path]:
    """One output stem per input file in ``out``: its name without the extension, or with it
    (``a.pdf`` -> ``a-pdf``) and then a counter when two inputs would write the same file."""
    taken: set[str] = set()
    stems = []
    for path in files:
        name = path.stem
        if name in taken:
            name = f"{path.stem}-{path.suffix.lstrip('.')}" if path.suffix else name
        base, k = name, 2
        while name in taken:
            name, k = f"{base}-{k}", k + 1
        taken.add(name)
        stems.append(out / name)
    return stems


@app.command()
def digitize(
    files: list[Path] = typer.Argument(
        ...,
        exists=True,
        dir_okay=False,
        help="ECG files (PNG, JPEG, TIFF, BMP, GIF, WebP, HEIC, PDF, DICOM).",
    ),
    out: Path = typer.Option(..., help="Folder for the signals."),
    format_: str = typer.Option(
        "dcm",
        "--format",
        help="dcm: DICOM 12-lead ECG waveform | csv: time_s + 12 leads in mV | npz: NumPy arrays "
        "(csv and npz come with a JSON sidecar NAME.json).",
    ),
) -> None:
    """Write each file's 12-lead signal (500 Hz, mV) and print its info as a JSON line.

    A DICOM source lends its patient and study to the DICOM output; other files start a new
    study. Refused files print their reason (as `preprocess` does) and the run goes on; the
    exit code is 1 if any was refused. Research use only, not for diagnosis.
    """
    import sys

    from .imaging.pipeline import read_ecg
    from .imaging.signal_io import FORMATS, write_signal

    if format_ not in FORMATS:
        raise typer.BadParameter(f"unknown format {format_!r}; choose from {', '.join(FORMATS)}")
    out.mkdir(parents=True, exist_ok=True)
    refused = 0
    with progress_bar(redirect_stdout=sys.stdout.isatty()) as bar:
        task = bar.add_task("digitizing", total=len(files))
        for path, stem in zip(files, _output_stems(files, out), strict=True):
            start = time.perf_counter()
            try:
                data = path.read_bytes()
                signal, info = read_ecg(data)
                written = write_signal(signal, info, data, stem, format_)
            except Exception as exc:  # a refusal; anything else is a bug, reported the same way
                error = _file_error(exc, "digitising")
                refused += 1
                print(json.dumps({"file": str(path), **error.to_dict()}), flush=True)
                console.print(
                    escape(f"{path}: refused ({error.reason}): {error.message}"), style="red", soft_wrap=True
                )
            else:
                elapsed = round((time.perf_counter() - start) * 1000, 1)
                line = {
                    "file": str(path),
                    "outputs": [str(p) for p in written],
                    **info,
                    "elapsed_ms": elapsed,
                }
                print(json.dumps(line), flush=True)
            bar.advance(task)
    if refused:
        console.print(f"[red]{refused} of {len(files)} files refused[/red]")
        raise typer.Exit(1)


class _Stop:
    """SIGINT/SIGTERM as a flag, installed before any server starts: a signal that arrives
    while a server is still starting stops it cleanly instead of killing this process."""

    def __init__(self) -> None:
        import signal
        import threading

        self.event = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.event.set())

    def wait(self, stop_when) -> None:
        """Block until a signal arrives or ``stop_when()`` turns true."""
        while not self.event.wait(0.5):
            if stop_when():
                break


@app.command()
def triton(
    repository: Path = typer.Option(None, help="Model repository (default: the bundled model_repository)."),
    http_port: int = typer.Option(None, help="HTTP port (env ECGSCREEN_TRITON_HTTP_PORT, default 8000)."),
    grpc_port: int = typer.Option(None, help="gRPC port (env ECGSCREEN_TRITON_GRPC_PORT, default 8001)."),
    metrics_port: int = typer.Option(
        None, help="Metrics port (env ECGSCREEN_TRITON_METRICS_PORT, default 8002)."
    ),
    log_file: Path = typer.Option(None, help="Write tritonserver's log here (default: discard)."),
) -> None:
    """Run the embedded Triton (CPU config) until Ctrl-C / SIGTERM."""
    from .serving.triton import DEFAULT_REPOSITORY, EmbeddedTriton, TritonPorts

    stop = _Stop()
    server = EmbeddedTriton(
        repository or DEFAULT_REPOSITORY,
        TritonPorts.from_env(http_port, grpc_port, metrics_port),
        log_file=log_file,
    )
    with console.status("starting tritonserver (models loading)..."):
        server.start()
    console.print(
        f"Triton ready: HTTP {server.http_url}  gRPC {server.grpc_url}  metrics {server.metrics_url}\n"
        f"Ensemble: {ENSEMBLE_NAME} (input {ENSEMBLE_INPUT}). Ctrl-C to stop."
    )
    try:
        stop.wait(lambda: not server.running)
    finally:
        server.stop()
        console.print("Triton stopped.")


@app.command()
def serve(
    port: int = typer.Option(3000, help="Gateway HTTP port."),
    http_port: int = typer.Option(
        None, help="Triton HTTP port (env ECGSCREEN_TRITON_HTTP_PORT, default 8000)."
    ),
    grpc_port: int = typer.Option(
        None, help="Triton gRPC port (env ECGSCREEN_TRITON_GRPC_PORT, default 8001)."
    ),
    metrics_port: int = typer.Option(
        None, help="Triton metrics port (env ECGSCREEN_TRITON_METRICS_PORT, default 8002)."
    ),
    workers: int = typer.Option(2, help="Gateway worker processes."),
    log_dir: Path = typer.Option(
        None, help="Also write tritonserver.log and gateway.log here (the console gets them anyway)."
    ),
    logs: bool = typer.Option(
        True,
        "--logs/--no-logs",
        help="Stream both servers' logs to the console, each line marked with its source.",
    ),
) -> None:
    """Run the whole service: embedded Triton (CPU) + the BentoML gateway, until Ctrl-C.

    Triton is watched: restarted when it exits or its canary keeps failing (backoff 1 s
    doubling to 30 s); the gateway answers 503 + Retry-After meanwhile and recovers by itself."""
    from .contract import MODEL_NAME as model_name
    from .serving.canary import TritonCanary
    from .serving.procs import Cancelled, ConsoleLines
    from .serving.supervisor import Gateway, RestartPolicy, Supervisor
    from .serving.triton import DEFAULT_REPOSITORY, PROJECT_ROOT, EmbeddedTriton, TritonPorts

    if log_dir:
        log_dir.mkdir(parents=True, exist_ok=True)
    stop = _Stop()
    echo = ConsoleLines() if logs else None
    triton = EmbeddedTriton(
        DEFAULT_REPOSITORY,
        TritonPorts.from_env(http_port, grpc_port, metrics_port),
        log_file=log_dir / "tritonserver.log" if log_dir else None,
        echo=echo,
    )
    gateway = Gateway(
        port, triton.grpc_url, workers, log_file=log_dir / "gateway.log" if log_dir else None, echo=echo
    )
    policy = RestartPolicy.from_env()
    try:
        canary = TritonCanary.from_model_dir(
            triton.http_url, DEFAULT_REPOSITORY / model_name, policy.canary_timeout_s
        )
    except ValueError as exc:
        _fail(exc)
    say = ConsoleLines() if echo is None else echo
    supervisor = Supervisor(
        triton, gateway, canary, policy, say=lambda line: say(f"serve | {time.strftime('%H:%M:%S')} {line}")
    )
    if canary is None:
        say("serve | the model card has no readiness canary (ecgscreen export --refresh-canary adds it): "
            "Triton is watched through its own readiness only")  # fmt: skip
    console.print("starting tritonserver and the gateway...")
    try:
        supervisor.start(stop.event)
        sample = PROJECT_ROOT / "samples" / "ecg_3x4.pdf"
        console.print(
            f"[bold green]ecgscreen is ready[/bold green] at {gateway.url}  (research use only, not for diagnosis)\n"
            f"  Screening page: [bold]{gateway.url}/ui/[/bold]\n"
            f"  Triton: gRPC {triton.grpc_url}, HTTP {triton.http_url}, metrics {triton.metrics_url}\n"
            f"  Try:  curl -F file=@{sample} {gateway.url}/predict\n"
            f"        curl -F file=@{sample} -F task=scar {gateway.url}/explain -o heatmap.png\n"
            "  Ctrl-C to stop.",
            soft_wrap=True,
        )
        supervisor.run(stop.event)
    except Cancelled:
        pass
    finally:
        supervisor.stop()
        console.print("stopped.")


@app.command()
def predict(
    file: Path = typer.Argument(
        ..., exists=True, dir_okay=False, help="ECG file (PNG, JPEG, TIFF, BMP, GIF, WebP, HEIC, PDF, DICOM)."
    ),
    clinical: str = typer.Option(None, help='Clinical features as JSON, e.g. \'{"age": 64, "dm": 1}\'.'),
    url: str = typer.Option("http://127.0.0.1:3000", envvar="ECGSCREEN_URL", help="Gateway URL."),
    token: str = typer.Option(
        None, envvar="ECGSCREEN_API_TOKEN", help="Bearer token, if the gateway requires one."
    ),
    explain: Path = typer.Option(None, help="Also save the scar heatmap PNG here."),
    timeout: float = typer.Option(60.0, help="Seconds to wait for an answer."),
) -> None:
    """Send one ECG to a running gateway and print its answer (JSON)."""
    import json

    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    form = {"clinical": clinical} if clinical else {}
    with httpx.Client(base_url=url, headers=headers, timeout=timeout) as client:
        try:
            response = client.post("/predict", files={"file": (file.name, file.read_bytes())}, data=form)
        except httpx.HTTPError as error:
            _error(f"cannot reach {url}: {error}")
            raise typer.Exit(2) from None
        print(json.dumps(response.json(), indent=2))
        if response.status_code != 200:
            raise typer.Exit(1)
        if explain:
            heatmap = client.post(
                "/explain", files={"file": (file.name, file.read_bytes())}, data={"task": "scar"}
            )
            explain.write_bytes(heatmap.content)
            console.print(f"heatmap written to {explain}")


@app.command()
def screen(
    source: Path = typer.Argument(
        ..., help="A folder (searched recursively), a list file (one path per line) or a labels.csv."
    ),
    out: Path = typer.Option(..., "--out", help="Results CSV; if it exists, the files in it are skipped."),
    url: str = typer.Option(
        "127.0.0.1:8001",
        envvar="ECGSCREEN_TRITON_URL",
        help="Triton's gRPC address (a Kubernetes Service too).",
    ),
    concurrency: int = typer.Option(8, min=1, help="Files in flight (about 4 per intake instance served)."),
    explain_dir: Path = typer.Option(None, help="Write each answered file's heatmaps here."),
    dicom_dir: Path = typer.Option(
        None, help="Write each answered file's DICOM results (SR + heatmaps) here."
    ),
    reading_dir: Path = typer.Option(
        None,
        help="Write each file's reading picture here (NAME.reading.png: the traces read, over the page), "
        "refused ones too. Runs intake once more per file on this machine.",
    ),
    model_dir: Path = typer.Option(
        None, envvar="ECGSCREEN_MODEL_DIR", help="The served model's folder (its model_card.json)."
    ),
) -> None:
    """Screen an archive through Triton: one CSV row per file (probabilities, calls at the
    model card's thresholds, risk levels, intake's quality and warnings, or why it was
    refused). Resumable: a killed run loses only the files in flight."""
    from .card import ModelCard
    from .screen.display import ScreenProgress, print_summary
    from .screen.runner import screen as run_screen
    from .screen.sources import find_sources
    from .serving.triton import DEFAULT_REPOSITORY

    try:
        card = ModelCard.load(model_dir or DEFAULT_REPOSITORY / MODEL_NAME)
        skip = tuple(p for p in (out, explain_dir, dicom_dir, reading_dir) if p is not None)
        sources = find_sources(source, skip=skip)
        with ScreenProgress(console) as progress:
            summary = run_screen(sources, out, card, url, concurrency, explain_dir, dicom_dir,
                                 advance=progress.advance, on_start=progress.on_start,
                                 reading_dir=reading_dir)  # fmt: skip
    except (ValueError, RuntimeError) as exc:
        _fail(exc)
    print_summary(console, summary, out)
    if summary.unanswered:
        raise typer.Exit(3)


class _RichCallbacks:
    """Training progress as rich progress bars, one per phase; epochs as table lines."""

    def __init__(self, bar: Progress):
        self.bar, self.task = bar, None

    def start(self, phase: str, total: int) -> None:
        if self.task is not None:
            self.bar.remove_task(self.task)
        self.task = self.bar.add_task(phase, total=max(total, 0), loss="")

    def advance(self, n: int = 1, **info: float) -> None:
        if self.task is not None:
            loss = info.get("loss")
            self.bar.update(self.task, advance=n, loss="" if loss is None else f"loss {loss:.4f}")

    def epoch(self, record: dict) -> None:
        flag = " [green]best[/]" if record.get("best") else ""
        stop = " [yellow]early stop[/]" if record.get("early_stop") else ""
        console.print(
            f"epoch {record['epoch'] + 1}: train {record['train_loss']:.4f}  val {record['val_loss']:.4f}  "
            f"lr {record['lr']:.2e}  {record['seconds']:.0f} s{flag}{stop}"
        )


def _loss_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[loss]}"),
        console=console,
    )


def _phase_progress(bar: Progress):
    def start(phase: str, total: int):
        task = bar.add_task(phase, total=total, loss="")
        return lambda k: bar.advance(task, k)

    return start


def _error(message: str) -> None:
    """An error on stderr as one unwrapped line: a path or URL in it stays whole, whatever the
    terminal's width (a person copies them out), and is never read as rich markup."""
    console.print(f"[red]error:[/] {escape(message)}", soft_wrap=True)


def _fail(exc: Exception) -> None:
    _error(str(exc))
    raise typer.Exit(2)


@app.command()
def train(
    config: str = typer.Option(
        ...,
        help="YAML config file, or a packaged one: demo, multitask, "
        "multitask_clinical, single_ms, single_lvef, transfer.",
    ),
    data: Path = typer.Option(..., help="Dataset folder with labels.csv (e.g. from `ecgscreen synth`)."),
    out: Path = typer.Option(..., help="Run folder: checkpoints, history, evaluation."),
    device: str = typer.Option("cpu", help="cpu | cuda | cuda:N"),
    resume: bool = typer.Option(False, help="Continue the run in --out from its last.pt."),
    init: str = typer.Option(
        None, help="Start from this run or checkpoint (sets init_from; transfer, fusion)."
    ),
    set_: list[str] = typer.Option([], "--set", help="Override a config key: --set epochs=3 (repeatable)."),
    workers: int = typer.Option(0, help="Processes decoding files into the cache (0: one per core)."),
    threads: int = typer.Option(0, help="Torch CPU threads (0: one per core)."),
) -> None:
    """Train a model (image, then optional clinical fusion), then evaluate it on val and test."""
    from .training.config import load_config
    from .training.loop import train as run_training

    overrides = list(set_) + ([f"init_from={init}"] if init else [])
    try:
        cfg = load_config(config, overrides)
        with _loss_bar() as bar:
            summary = run_training(
                cfg, data, out, device, resume, workers=workers or None, callbacks=_RichCallbacks(bar),
                threads=threads or None,
            )  # fmt: skip
    except ValueError as exc:
        _fail(exc)
    for split, tasks in summary["metrics"].items():
        aucs = ", ".join(f"{t} AUC {m['auc']:.3f}" for t, m in tasks.items() if m.get("auc") is not None)
        console.print(f"{split}: {aucs}")
    console.print(f"run written to {out} ({summary['epochs_run']} epochs)")


@app.command()
def evaluate(
    model: Path = typer.Option(..., help="Run folder / checkpoint (.pt), or model repository / .onnx."),
    data: Path = typer.Option(..., help="Dataset folder with labels.csv."),
    out: Path = typer.Option(..., help="Folder for metrics.json, table.md, roc.png, calibration.png."),
    threshold: str = typer.Option(
        "youden", help="youden | fixed:T | sensitivity:S | model (stored thresholds)"
    ),
    prevalence: float = typer.Option(None, help="Also report PPV/NPV adjusted to this prevalence."),
    split: str = typer.Option("test", help="train | val | test | all"),
    bootstrap: int = typer.Option(1000, help="Bootstrap resamples for the AUC CI."),
    device: str = typer.Option("cpu", help="Device for checkpoints: cpu | cuda"),
    workers: int = typer.Option(0, help="Processes decoding files into the cache (0: one per core)."),
) -> None:
    """Metrics of the study (AUC with bootstrap CI, sensitivity, specificity, PPV, NPV, ECE)."""
    from .training.evaluate import evaluate as run_evaluation
    from .training.evaluate import markdown_table

    try:
        with _loss_bar() as bar:
            results = run_evaluation(
                model, data, out, split, threshold, prevalence, workers=workers or None,
                n_bootstrap=bootstrap, device=device, progress=_phase_progress(bar),
            )  # fmt: skip
    except ValueError as exc:
        _fail(exc)
    console.print(markdown_table(results))
    hardest = (results.get("subsets") or {}).get("clean_vs_hardest")
    if hardest:
        for task, h in hardest.items():
            console.print(
                f"{task}: clean AUC {h['clean']}, hardest subset {h['hardest']} AUC {h['hardest_auc']}"
            )
    console.print(f"wrote {out / 'metrics.json'}")


_INT8_HELP = (
    "Also write the network's INT8 variant for the CPU (model.int8.onnx; kept only when it passes its "
    "parity check against FP32, the card's int8 says what was measured)."
)


def _int8_options(int8: bool, calibration: int, fresh: int, data: Path | None):
    from .export.quantize import Int8Options

    if not int8:
        return None
    try:
        return Int8Options(n_calibration=calibration, n_fresh=fresh, data=data)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _print_int8(card: ModelCard) -> None:
    q = card.int8
    if q is None:
        return
    verdict = "kept: the CPU config serves it" if q.passed else f"refused ({q.refused}): the CPU serves FP32"
    aucs = ", ".join(f"{t} {q.auc_fp32[t]:.4f} -> {q.auc_int8[t]:.4f}" for t in q.auc_fp32)
    limits = f"limits: max |dP| {q.limits['max_abs_diff']}, AUC +- {q.limits['auc_diff']}"
    console.print(f"INT8 variant {q.file} ({q.bytes / 1e6:.1f} MB) {verdict}; max |dP| {q.max_abs_diff_held_out:.4f} "
                  f"held-out (n={q.n_held_out}), {q.max_abs_diff_fresh:.4f} fresh (n={q.n_fresh}); AUC {aucs} "
                  f"({limits})")  # fmt: skip


@app.command(
    help=f"Export a run as {MODEL_NAME}/<version>/model.onnx, its INT8 variant, fusion.onnx, model_card.json "
    "and the readiness canary; or, with --refresh-canary alone, recompute the canary's expected answer; or, "
    "with --quantize-only, make the INT8 variant of the model already there."
)
def export(
    run: Path = typer.Option(None, help="Training run folder (or its best.pt)."),
    repository: Path = typer.Option(Path("model_repository"), help="Triton model repository."),
    data: Path = typer.Option(
        None, help="Also evaluate the exported ONNX on this dataset's val/test splits."
    ),
    version: int = typer.Option(1, min=1, help="Model version folder."),
    refresh_canary: bool = typer.Option(
        False,
        "--refresh-canary",
        help="Recompute the readiness canary's expected answer through the repository's model and the "
        "current intake (after either changed), without exporting.",
    ),
    canary: Path = typer.Option(
        None, exists=True, dir_okay=False, help="Another ECG file as the canary (default: the one there)."
    ),
    int8: bool = typer.Option(True, "--int8/--no-int8", help=_INT8_HELP),
    int8_calibration: int = typer.Option(
        128,
        help="ECGs to calibrate INT8 on (a quarter held out): generator ECGs through the intake, or --data's.",
    ),
    int8_fresh: int = typer.Option(600, help="Fresh generator ECGs on which INT8's AUC must match FP32's."),
    quantize_only: bool = typer.Option(
        False,
        "--quantize-only",
        help="Make the INT8 variant of the repository's model as it is (--data: "
        "calibrate on its files), without exporting or evaluating.",
    ),  # fmt: skip
) -> None:
    from .export.canary import refresh_canary as refresh
    from .export.onnx_export import evaluate_export, export_run
    from .export.quantize import quantize_export

    if run is None and not refresh_canary and not quantize_only:
        raise typer.BadParameter(
            "give --run (to export), --refresh-canary (to recompute the canary) or --quantize-only"
        )
    options = _int8_options(int8 or quantize_only, int8_calibration, int8_fresh, data)
    try:
        if run is not None:
            card = export_run(run, repository, version=version, int8=options)
        if refresh_canary or canary is not None:
            card = refresh(repository, source=canary)
        if quantize_only and run is None:
            card = quantize_export(repository, options=options)
        elif data is not None:
            with _loss_bar() as bar:
                card = evaluate_export(repository, data, progress=_phase_progress(bar))
    except ValueError as exc:
        _fail(exc)
    _print_card(card, repository)


def _print_card(card: ModelCard, repository: Path) -> None:
    size = card.onnx.bytes / 1e6
    console.print(f"{repository / card.name}: {card.architecture.backbone} {card.input_size} px, "
                  f"ONNX {size:.1f} MB, fusion {'yes' if card.fusion_onnx else 'no'}")  # fmt: skip
    console.print(f"thresholds {card.thresholds} ({card.threshold_source})")
    _print_int8(card)
    if card.canary:
        int8 = f", INT8 {card.canary.expected_int8}" if card.canary.expected_int8 is not None else ""
        console.print(f"readiness canary {card.canary.file}: expects FP32 {card.canary.expected}{int8} "
                      f"+- {card.canary.tolerance}, the served variant's")  # fmt: skip


@app.command("import-mtecg")
def import_mtecg(
    folder: Path = typer.Argument(..., help="The study's folder: model.ckpt, configs.json, transform.json."),
    repository: Path = typer.Option(Path("model_repository"), help="Triton model repository."),
    data: Path = typer.Option(
        None, help="Also evaluate the imported model on this dataset's val/test splits."
    ),
    version: int = typer.Option(1, min=1, help="Model version folder."),
    trust_pickle: bool = typer.Option(
        False, help="Allow arbitrary Python objects in model.ckpt (trusted files only)."
    ),
    task: str = typer.Option(
        None, help="scar or lvef: the task of a single-task model whose checkpoint does not record it."
    ),
    clinical_defaults: str = typer.Option(
        None,
        help="Clinical models: JSON object with the value of each of age, female_gender, dm, ht, smoke, dlp "
        "used when a request leaves it out.",
    ),
    int8: bool = typer.Option(True, "--int8/--no-int8", help=_INT8_HELP),
    int8_calibration: int = typer.Option(
        128,
        help="ECGs to calibrate INT8 on (a quarter held out): generator ECGs through the intake, or --data's.",
    ),
    int8_fresh: int = typer.Option(600, help="Fresh generator ECGs on which INT8's AUC must match FP32's."),
) -> None:
    """Import a model folder written by the study's code (every class it trains: multi-task,
    single-task, their clinical variants; Lightning checkpoint or bare state dict)."""
    from .export.mtecg import import_mtecg as run_import
    from .export.onnx_export import evaluate_export

    try:
        defaults = None
        if clinical_defaults is not None:
            try:
                defaults = json.loads(clinical_defaults)
            except json.JSONDecodeError:
                defaults = None
            if not isinstance(defaults, dict):
                raise ValueError(f"--clinical-defaults is not a JSON object: {clinical_defaults!r}")
        card = run_import(
            folder,
            repository,
            version=version,
            trust_pickle=trust_pickle,
            task=task,
            clinical_defaults=defaults,
            int8=_int8_options(int8, int8_calibration, int8_fresh, data),
        )
        if data is not None:
            with _loss_bar() as bar:
                card = evaluate_export(repository, data, progress=_phase_progress(bar))
    except ValueError as exc:
        _fail(exc)
    _print_card(card, repository)


@app.command("demo-model")
def demo_model(
    work: Path = typer.Option(Path("runs/demo"), help="Working folder (datasets, run, evaluation)."),
    repository: Path = typer.Option(Path("model_repository"), help="Where the model is exported."),
    n_train: int = typer.Option(5000, help="Training ECGs to synthesise."),
    n_test: int = typer.Option(1200, help="Test ECGs to synthesise (fresh seed)."),
    threads: int = typer.Option(0, help="Torch CPU threads (0: one per core; 1 on a machine others share)."),
) -> None:
    """Rebuild the committed demo model: synth -> train -> export -> evaluate (about 1.5 h on 2 cores)."""
    from .export.demo import build_demo

    with _loss_bar() as bar:
        card = build_demo(work, repository, n_train, n_test, callbacks=_RichCallbacks(bar),
                          progress=_phase_progress(bar), log=console.print, threads=threads or None)  # fmt: skip
    _print_card(card, repository)


@app.command("segmenter-model")
def segmenter_model(
    work: Path = typer.Option(Path("build/segmenter"), help="Working folder (cached pages, run, log)."),
    repository: Path = typer.Option(Path("model_repository"), help="Where ecg_segment is exported."),
    n_test: int = typer.Option(90, min=1, help="Fresh pages the exported ONNX is evaluated on."),
    threads: int = typer.Option(1, help="Torch CPU threads (0: one per core)."),
    max_minutes: float = typer.Option(
        0, help="Stop training after this long (0: never); run again to resume."
    ),
) -> None:
    """Rebuild the page segmenter (ecg_segment): cache generator pages -> train -> export ->
    evaluate the ONNX on fresh pages (about 1.5 h on one core; resumable)."""
    from .export.segmenter import build_segmenter_model

    with progress_bar() as bar:
        card = build_segmenter_model(work, repository, n_test, threads=threads or None,
                                     progress=_phase_progress(bar), say=console.print,
                                     max_minutes=max_minutes or None)  # fmt: skip
    if card is None:
        console.print("[yellow]training stopped before its end[/]: run the same command again to resume")
        raise typer.Exit(1)
    metrics = card.metrics
    console.print(f"{repository / card.name}: {card.architecture.variant} U-Net, "
                  f"{card.architecture.parameters / 1e6:.2f} M parameters, ONNX {card.onnx.bytes / 1e6:.2f} MB, "
                  f"{card.speed.median_ms_per_page:.0f} ms per A4 page on one core")  # fmt: skip
    console.print(f"IoU per class: {metrics.per_class_iou}")
    console.print(f"trace IoU per acquisition: {metrics.trace_iou_by_acquisition}")


# -- the AI router ------------------------------------------------------------------------------
pacs_app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode=None,
    help="The AI router: new ECGs from a PACS (and C-STORE pushes) through the gateway's /report, "
    "the SR and heatmaps stored back. Research use only, not for diagnosis.",
)
app.add_typer(pacs_app, name="pacs")


@pacs_app.command("run")
def pacs_run(
    pacs: str = typer.Option(
        None,
        envvar="ECGSCREEN_PACS_URL",
        help="The PACS's DICOMweb root (e.g. http://orthanc:8042/dicom-web); its ECGs' results go back to it.",
    ),
    gateway: str = typer.Option(
        "http://127.0.0.1:3000",
        envvar="ECGSCREEN_GATEWAY_URL",
        help="The gateway (its token: ECGSCREEN_API_TOKEN or ECGSCREEN_API_TOKEN_FILE).",
    ),
    state: Path = typer.Option(
        Path("pacs-state/state.sqlite"),
        envvar="ECGSCREEN_PACS_STATE",
        help="The router's SQLite state (the C-STORE spool goes next to it).",
    ),
    feed: str = typer.Option(
        "auto",
        help="auto (Orthanc's change log if the PACS is Orthanc, else QIDO-RS) | orthanc | qido | none.",
    ),
    orthanc_url: str = typer.Option(None, help="Orthanc's REST root, if not the DICOMweb URL's server."),
    lookback_days: int = typer.Option(2, min=0, help="QIDO-RS: studies of the last N days."),
    since: str = typer.Option(None, help="QIDO-RS: studies from this date (YYYY-MM-DD) on, if earlier."),
    poll_interval: float = typer.Option(2.0, min=0.1, help="Seconds between polls of the PACS."),
    concurrency: int = typer.Option(2, min=1, help="ECGs in flight at once."),
    scp_port: int = typer.Option(0, envvar="ECGSCREEN_PACS_SCP_PORT", help="C-STORE SCP port (0: no SCP)."),
    scp_host: str = typer.Option("0.0.0.0", help="Address the SCP listens on."),
    ae_title: str = typer.Option("ECGSCREEN", help="The router's AE title (SCP, and C-STORE forwarding)."),
    forward: str = typer.Option(
        None,
        envvar="ECGSCREEN_PACS_FORWARD",
        help="Where results of pushed ECGs go: dicom://AET@host:port or a DICOMweb URL (default: the PACS).",
    ),
    metrics_port: int = typer.Option(9102, help="Prometheus metrics port (0: none)."),
    metrics_host: str = typer.Option("0.0.0.0", help="Address the metrics server listens on."),
    max_backoff: float = typer.Option(300.0, min=1.0, help="Longest wait before retrying a failed ECG (s)."),
    tasks: str = typer.Option(None, help="Comma-separated tasks to report (default: all)."),
) -> None:
    """Run the router until Ctrl-C / SIGTERM (then the ECGs in flight finish)."""
    import datetime

    from .pacs.router import Router, RouterConfig, configure_logging

    try:
        config = RouterConfig(
            gateway_url=gateway, state_path=state, dicomweb_url=pacs, feed=feed, orthanc_url=orthanc_url,
            lookback_days=lookback_days, since=datetime.date.fromisoformat(since) if since else None,
            poll_interval_s=poll_interval, concurrency=concurrency, scp_port=scp_port or None,
            scp_host=scp_host, ae_title=ae_title, forward=forward, metrics_port=metrics_port or None,
            metrics_host=metrics_host, max_backoff_s=max_backoff, tasks=tasks,
        )  # fmt: skip
        stop = _Stop()
        configure_logging()
        router = Router(config)
    except ValueError as exc:
        _fail(exc)
    router.run(stop.event)


@pacs_app.command("status")
def pacs_status(
    state: Path = typer.Option(
        Path("pacs-state/state.sqlite"), envvar="ECGSCREEN_PACS_STATE", help="The router's state."
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON object instead of tables."),
    show: int = typer.Option(20, min=0, help="How many recent refusals and failures to list."),
) -> None:
    """What the router has done: counts by status, the latest refusals and failures (each ECG
    named by a digest of its UID, never by patient data)."""
    import json
    import time

    from rich.table import Table

    from .pacs.router import ecg_key
    from .pacs.state import State

    if not state.exists():
        _fail(ValueError(f"{state} does not exist: the router has not run with this state yet"))
    db = State(state)
    try:
        summary = {"counts": db.counts(), "cursors": {}, "refused": [], "failed": []}
        for feed in ("orthanc", "qido"):
            if position := db.cursor(feed):
                summary["cursors"][feed] = position
        for status in ("refused", "failed"):
            for item in db.listing(status, show):
                summary[status].append({"ecg": ecg_key(item.sop_instance_uid), "origin": item.origin,
                                        "reason": item.reason, "attempts": item.attempts,
                                        "age_s": round(time.time() - item.arrived)})  # fmt: skip
    finally:
        db.close()
    if as_json:
        typer.echo(json.dumps(summary))
        return
    console.print("  ".join(f"{k}: [bold]{v}[/bold]" for k, v in summary["counts"].items()))
    for status in ("refused", "failed"):
        if summary[status]:
            table = Table("ecg", "origin", "reason", "attempts", "age (s)", title=f"latest {status}")
            for row in summary[status]:
                table.add_row(
                    row["ecg"], row["origin"], row["reason"], str(row["attempts"]), str(row["age_s"])
                )
            console.print(table)


if __name__ == "__main__":
    app()
