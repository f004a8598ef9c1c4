"""``dff triton``, ``dff serve``, ``dff stream``: a Triton model repository, a server on it, a stream's client."""

from __future__ import annotations

import argparse
import threading

from dff.commands.run import parse_option
from dff.errors import ConfigError, VideoError


def register(subparsers: argparse._SubParsersAction) -> None:
    triton = subparsers.add_parser("triton", help="write a Triton Inference Server model repository for an export")
    triton.add_argument("export", help="export directory (`dff export`; with engines/ from `dff build` for tensorrt)")
    triton.add_argument("--out", required=True, help="model repository folder to write")
    triton.add_argument("--name", default="dff", help="model name in the repository (default dff)")
    triton.add_argument("--backend", default="onnxruntime", help="runtime backend inside the model (default onnxruntime)")
    triton.add_argument("--option", "-O", action="append", type=parse_option, default=[], metavar="KEY=VALUE",
                        help="backend option, repeatable, as for `dff run` (e.g. -O provider=cuda -O threads=2)")
    triton.add_argument("--key-interval", "-l", type=int, default=10, help="one key frame every l frames of a stream")
    triton.add_argument("--max-sequences", type=int, default=8,
                        help="streams one instance holds at once (max_candidate_sequences) and its largest batch")
    triton.add_argument("--idle-timeout", type=float, default=30.0,
                        help="seconds after which an idle stream is freed (its client restarts it with a key frame)")
    triton.add_argument("--max-queue-delay-us", type=int, default=2000,
                        help="how long Triton may hold a request to batch it with other streams' (microseconds)")
    triton.add_argument("--instances", type=int, default=1, help="model instances (instance_group count)")
    triton.add_argument("--device", choices=("cpu", "gpu"), default="cpu", help="instance kind: KIND_CPU or KIND_GPU")
    triton.add_argument("--gpus", default="", help="GPU ids for --device gpu, comma-separated (default: all)")
    triton.add_argument("--execution-env", help="conda-pack archive for the model's Python (EXECUTION_ENV_PATH)")
    triton.set_defaults(handler=write)

    serve = subparsers.add_parser("serve", help="run a Triton server on a model repository (foreground)")
    serve.add_argument("repository", help="model repository (`dff triton`)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    serve.add_argument("--http-port", type=int, default=8000)
    serve.add_argument("--grpc-port", type=int, default=8001)
    serve.add_argument("--metrics-port", type=int, default=8002)
    serve.add_argument("--ready-timeout", type=float, default=120.0, help="seconds to wait for the models to load")
    serve.add_argument("--exit-timeout", type=int, default=5,
                       help="seconds the server waits for unfinished streams when stopped")
    serve.add_argument("--log", help="server log file (default: a temporary file, named on start)")
    serve.add_argument("--server-env", help="the server's own Python environment (default: $DFF_SERVER_ENV or "
                       "~/.cache/dff/server-env-pyX.Y, created on first use)")
    serve.add_argument("--tritonserver", help="use this tritonserver binary with its own backends instead "
                       "(a container's /opt/tritonserver/bin/tritonserver)")
    serve.set_defaults(handler=serve_repository)

    stream = subparsers.add_parser("stream", help="stream a video to a served model and get its labels back")
    stream.add_argument("server", help="HOST:PORT of the server's gRPC endpoint (e.g. 127.0.0.1:8001)")
    stream.add_argument("source", nargs="+",
                        help="video file, folder of frames (numeric order) or camera index; several: several streams")
    stream.add_argument("--model", default="dff", help="model name on the server (default dff)")
    stream.add_argument("--sequence-id", type=int, help="the stream's sequence id (default: random)")
    stream.add_argument("--out", help="overlay video to write (.mp4)")
    stream.add_argument("--labels-dir", help="folder for one PNG of class ids per frame")
    stream.add_argument("--log", help="JSON-lines file of per-frame round trips")
    stream.add_argument("--no-progress", action="store_true", help="no progress bar")
    stream.set_defaults(handler=stream_source)


def write(args: argparse.Namespace) -> int:
    from dff.serve.repository import ModelSettings, write_repository

    try:
        gpus = tuple(int(g) for g in args.gpus.split(",") if g.strip())
    except ValueError:
        raise ConfigError(f"--gpus takes comma-separated GPU ids, got {args.gpus!r}") from None
    settings = ModelSettings(
        name=args.name,
        backend=args.backend,
        options=dict(args.option),
        interval=args.key_interval,
        max_sequences=args.max_sequences,
        idle_timeout_s=args.idle_timeout,
        max_queue_delay_us=args.max_queue_delay_us,
        instances=args.instances,
        device=args.device,
        gpus=gpus,
        execution_env=args.execution_env,
    )
    model_dir = write_repository(args.export, args.out, settings)
    print(f"wrote model {settings.name!r} to {model_dir}; serve it with `dff serve {args.out}`")
    return 0


def serve_repository(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dff.serve.environment import InstalledServer, ensure_server_environment
    from dff.serve.server import Endpoints, TritonServer

    environment = (
        InstalledServer(Path(args.tritonserver)) if args.tritonserver else ensure_server_environment(args.server_env)
    )
    endpoints = Endpoints(args.host, args.http_port, args.grpc_port, args.metrics_port)
    server = TritonServer(
        args.repository, environment=environment, endpoints=endpoints, exit_timeout_s=args.exit_timeout, log_path=args.log
    )
    with server.start(ready_timeout_s=args.ready_timeout):
        print(f"serving {args.repository}: gRPC {endpoints.grpc}, HTTP {endpoints.http}, metrics {endpoints.metrics}")
        print(f"log: {server.log_path}; stream to it with `dff stream {endpoints.grpc} VIDEO`; Ctrl-C stops", flush=True)
        try:
            status = server.process.wait()
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: a normal stop, unfinished streams get the exit timeout
            print(f"stopping the server (waits up to {args.exit_timeout} s for unfinished streams)", flush=True)
            print(f"stopped (tritonserver exit status {server.stop()})")
            return 0
    print(f"dff serve: error: tritonserver exited with status {status}; the end of its log: {server.log_tail()}")
    return 1


def stream_source(args: argparse.Namespace) -> int:
    from dff.atomic import check_output_dir, check_output_file

    if len(args.source) > 1 and (args.out or args.labels_dir or args.log):
        raise ConfigError("--out, --labels-dir and --log take one source: run one `dff stream` per source to write them")
    for path, what in ((args.out, "--out"), (args.log, "--log")):
        if path:
            check_output_file(path, what)
    if args.labels_dir:
        check_output_dir(args.labels_dir, "--labels-dir")
    if len(args.source) == 1:
        print("\n".join(_stream_one(args, args.source[0], args.sequence_id, progress=not args.no_progress)))
        return 0
    # Several sources: several streams, one thread and one sequence each.
    reports: list[list[str] | BaseException] = [[] for _ in args.source]

    def run(k: int) -> None:
        try:
            sequence = None if args.sequence_id is None else args.sequence_id + k
            reports[k] = _stream_one(args, args.source[k], sequence, progress=False)
        except Exception as error:  # reported below, per source
            reports[k] = error

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(args.source))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for source, report in zip(args.source, reports):
        print(f"{source}: error: {report}" if isinstance(report, BaseException) else "\n".join(report))
    return 1 if any(isinstance(report, BaseException) for report in reports) else 0


def _stream_one(args: argparse.Namespace, spec: str, sequence_id: int | None, *, progress: bool) -> list[str]:
    """Stream ``spec`` as one sequence, writing the outputs ``args`` names; the summary's lines."""
    from dff.runtime import FrameResult, RunOutputs
    from dff.runtime.timing import FrameTiming
    from dff.runtime.video import RunReport
    from dff.serve.client import StreamClient, stream_frames
    from dff.sources import open_source

    source = open_source(spec)
    with StreamClient(args.server, model=args.model, sequence_id=sequence_id) as client:
        model = client.model_info()
        outputs = RunOutputs(
            num_classes=len(model.class_names),
            overlay_path=args.out,
            labels_dir=args.labels_dir,
            log_path=args.log,
            fps=source.fps or 25.0,
        )
        timings = []
        with outputs:
            for frame, served in stream_frames(client, _progress(source) if progress else source):
                timing = FrameTiming(index=frame.index, key=served.key, stages_ms={"round trip": served.latency_ms})
                outputs.write(frame, FrameResult(labels=served.labels, key=served.key, timing=timing))
                timings.append(timing)
            if not timings:
                raise VideoError(f"{spec} gave no readable frames; nothing was sent")
    lines = [
        f"{spec}: streamed {len(timings)} frames as sequence {client.sequence_id} to {args.server} (model "
        f"{args.model}); {sum(t.key for t in timings)} key frames; {client.restarts} restart(s) of a lost sequence"
    ]
    lines += RunReport.of(timings, interval=model.interval, source=source).lines()
    for label, path in (("overlay video", args.out), ("labels", args.labels_dir), ("timing log", args.log)):
        if path:
            lines.append(f"wrote {label}: {path}")
    return lines


def _progress(source):
    from tqdm import tqdm

    return tqdm(source, total=source.length, unit="frame", disable=source.length is None)
