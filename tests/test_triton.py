"""Serving on a real Triton Inference Server (the nvidia-pytriton wheel's tritonserver) on 127.0.0.1.

The server's own environment (numpy < 2) is created once and cached (~/.cache/dff, or $DFF_SERVER_ENV); where it
cannot be created the tests fail with the reason: nothing here passes without a running server.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import tritonclient.grpc as tritonclient_grpc
from tritonclient.utils import InferenceServerException

from dff.cli import main
from dff.runtime import DeepFeatureFlowRuntime, FixedInterval, open_backend
from dff.serve.client import ServeError, StreamClient
from dff.serve.environment import ServerEnvironment, ensure_server_environment
from dff.serve.repository import ModelSettings, write_repository
from dff.serve.server import Endpoints, ServerError, TritonServer
from helpers import decode_all, small_clip, vtest_frames

INTERVAL, IDLE_S = 3, 1.5
SIZE = (64, 96)


@pytest.fixture(scope="session")
def server_env() -> ServerEnvironment:
    try:
        return ensure_server_environment()
    except Exception as error:  # no silent pass: the server is what these tests test
        pytest.fail(f"the Triton server environment cannot be created: {error}")


@pytest.fixture(scope="module")
def repository(tiny_export: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    settings = ModelSettings(interval=INTERVAL, max_sequences=4, idle_timeout_s=IDLE_S, max_queue_delay_us=20000)
    root = tmp_path_factory.mktemp("repo")
    write_repository(tiny_export, root, settings)
    return root


@pytest.fixture(scope="module")
def server(repository: Path, server_env: ServerEnvironment, tmp_path_factory: pytest.TempPathFactory):
    log = tmp_path_factory.mktemp("log") / "tritonserver.log"
    with TritonServer(repository, environment=server_env, endpoints=Endpoints.free(), exit_timeout_s=3, log_path=log).start(
        ready_timeout_s=120
    ) as running:
        yield running


def local_results(export: Path, frames: list[np.ndarray], restart_at: tuple[int, ...] = ()) -> list:
    """The in-process runtime on the same frames and schedule (a restart where the server's sequence restarted)."""
    with open_backend("onnxruntime", model=export) as backend:
        runtime = DeepFeatureFlowRuntime(backend=backend, scheduler=FixedInterval(INTERVAL))
        out = []
        for i, image in enumerate(frames):
            if i in restart_at:
                runtime.reset()
            out.append(runtime(image))
        return out


def test_four_concurrent_streams_equal_the_local_runtime_and_are_batched(server: TritonServer, tiny_export: Path) -> None:
    streams = [vtest_frames(10, SIZE, start=60 * j) for j in range(4)]
    served: list[list] = [[] for _ in streams]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(streams))

    def run(j: int) -> None:
        try:
            with StreamClient(server.endpoints.grpc) as client:
                barrier.wait()
                served[j] = [client.send(image, end=i == len(streams[j]) - 1) for i, image in enumerate(streams[j])]
        except BaseException as error:  # reported below: a thread's failure must fail the test
            errors.append(error)

    threads = [threading.Thread(target=run, args=(j,)) for j in range(len(streams))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    for frames, answers in zip(streams, served):
        expected = local_results(tiny_export, frames)
        assert [a.key for a in answers] == [e.key for e in expected]
        for a, e in zip(answers, expected):
            assert a.labels.shape == SIZE and np.array_equal(a.labels, e.labels)
    # The model's own counter: requests of different streams ran in one execute call (one batched tick) ...
    assert max(a.batch for answers in served for a in answers) > 1
    # ... and Triton's statistics agree: fewer executions than inferences.
    client = tritonclient_grpc.InferenceServerClient(server.endpoints.grpc)
    stats = client.get_inference_statistics("dff", as_json=True)["model_stats"][0]
    assert int(stats["execution_count"]) < int(stats["inference_count"])


def raw_infer(server: TritonServer, image: np.ndarray, sequence: int, *, start: bool, datatype: str = "UINT8"):
    client = tritonclient_grpc.InferenceServerClient(server.endpoints.grpc)
    frame = tritonclient_grpc.InferInput("FRAME", [1, *image.shape], datatype)
    frame.set_data_from_numpy(image[None])
    return client.infer("dff", [frame], sequence_id=sequence, sequence_start=start)


def test_bad_requests_get_clear_errors_and_other_streams_go_on(server: TritonServer, tiny_export: Path) -> None:
    frames = vtest_frames(6, SIZE)
    expected = local_results(tiny_export, frames)
    with StreamClient(server.endpoints.grpc) as other:
        assert np.array_equal(other.send(frames[0]).labels, expected[0].labels)
        with pytest.raises(InferenceServerException) as unknown:  # no START for a sequence never started
            raw_infer(server, frames[0], 987654321, start=False)
        assert "INVALID_ARGUMENT" in str(unknown.value.status()) and "START" in unknown.value.message()
        with pytest.raises(InferenceServerException, match="(?i)data.?type|FP32"):
            raw_infer(server, frames[0].astype(np.float32), 987654322, start=True, datatype="FP32")
        with pytest.raises(InferenceServerException, match="(?i)shape|dims"):
            raw_infer(server, frames[0][..., 0], 987654323, start=True)
        assert np.array_equal(other.send(frames[1]).labels, expected[1].labels)
        # A frame-size change mid-stream is a key frame at the new size.
        with StreamClient(server.endpoints.grpc) as resized:
            resized.send(frames[0])
            resized.send(frames[1])
            bigger = vtest_frames(1, (96, 128))[0]
            answer = resized.send(bigger)
            assert answer.key and answer.labels.shape == (96, 128)
        for i in range(2, 6):
            answer = other.send(frames[i])
            assert answer.key == expected[i].key and np.array_equal(answer.labels, expected[i].labels)


def test_an_idle_stream_is_freed_and_its_client_restarts_with_a_key_frame(server: TritonServer, tiny_export: Path) -> None:
    busy_frames, idle_frames = vtest_frames(6, SIZE, start=100), vtest_frames(4, SIZE, start=300)
    with StreamClient(server.endpoints.grpc) as busy, StreamClient(server.endpoints.grpc) as idle:
        busy_answers = [busy.send(busy_frames[0])]
        idle_answers = [idle.send(image) for image in idle_frames[:2]]
        both = idle_answers[-1]
        for image in busy_frames[1:]:  # the busy stream keeps sending; the idle one goes past the timeout
            time.sleep(IDLE_S / 3)
            busy_answers.append(busy.send(image))
        alone = busy_answers[-1]
        idle_answers += [idle.send(image) for image in idle_frames[2:]]
        assert idle.restarts == 1 and busy.restarts == 0 and idle.frames == len(idle_frames)
    # The freed stream's memory was released (measured by the model: key frames and key features it holds).
    assert both.held == 2 and alone.held == 1
    assert alone.state_bytes > 0 and both.state_bytes == 2 * alone.state_bytes
    assert [a.restarted for a in idle_answers] == [False, False, True, False] and idle_answers[2].key
    for answers, frames, restarts in ((busy_answers, busy_frames, ()), (idle_answers, idle_frames, (2,))):
        expected = local_results(tiny_export, frames, restart_at=restarts)
        assert [a.key for a in answers] == [e.key for e in expected]
        assert all(np.array_equal(a.labels, e.labels) for a, e in zip(answers, expected))


def broken_repository(root: Path, body: str) -> Path:
    model = root / "broken"
    (model / "1").mkdir(parents=True)
    (model / "config.pbtxt").write_text(
        'name: "broken"\nbackend: "python"\nmax_batch_size: 0\n'
        'input [ { name: "X" data_type: TYPE_UINT8 dims: [ 1 ] } ]\n'
        'output [ { name: "Y" data_type: TYPE_UINT8 dims: [ 1 ] } ]\n'
    )
    (model / "1" / "model.py").write_text(
        f"import time\nclass TritonPythonModel:\n    def initialize(self, args):\n        {body}\n"
        "    def execute(self, requests):\n        return []\n"
    )
    return root


def test_a_model_that_fails_to_load_is_reported_with_the_log(server_env: ServerEnvironment, tmp_path: Path) -> None:
    repo = broken_repository(tmp_path / "repo", "raise RuntimeError('cannot load: bad weights')")
    server = TritonServer(repo, environment=server_env, endpoints=Endpoints.free(), log_path=tmp_path / "log")
    with pytest.raises(ServerError, match="exited with status .*cannot load: bad weights"):
        server.start(ready_timeout_s=60)
    assert server.process is None


def test_a_server_stuck_loading_is_not_ready_by_the_deadline(server_env: ServerEnvironment, tmp_path: Path) -> None:
    repo = broken_repository(tmp_path / "repo", "time.sleep(600)")  # as a stub that never starts: "loading" for ever
    server = TritonServer(repo, environment=server_env, endpoints=Endpoints.free(), exit_timeout_s=1, log_path=tmp_path / "log")
    began = time.monotonic()
    with pytest.raises(ServerError, match=r"not ready after 3 s.*tritonserver|not ready after 3 s"):
        server.start(ready_timeout_s=3)
    assert time.monotonic() - began < 3 + 1 + 10 + 5  # deadline, exit timeout, grace, slack: no hang
    assert server.process is None


def test_no_server_is_a_clear_error(tmp_path: Path) -> None:
    closed = Endpoints.free()
    with StreamClient(closed.grpc, timeout_s=5) as client:
        with pytest.raises(ServeError, match=f"server {closed.grpc}"):
            client.send(vtest_frames(1, SIZE)[0])
    missing = TritonServer(tmp_path / "nothing", environment=ServerEnvironment(tmp_path / "env"))
    with pytest.raises(ServerError, match="does not exist: write one with `dff triton"):
        missing.start()


def test_dff_stream_writes_what_dff_run_writes(server: TritonServer, tiny_export: Path, tmp_path: Path, capsys) -> None:
    clip = small_clip(tmp_path / "clip.avi", 7, size=SIZE)
    labels = tmp_path / "labels"
    assert main(["stream", server.endpoints.grpc, str(clip), "--labels-dir", str(labels), "--log", str(tmp_path / "t.jsonl"),
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "streamed 7 frames" in printed and "0 restart(s)" in printed
    expected = local_results(tiny_export, decode_all(clip))
    import cv2

    pngs = sorted(labels.glob("*.png"))
    assert len(pngs) == 7
    for png, e in zip(pngs, expected):
        assert np.array_equal(cv2.imread(str(png), cv2.IMREAD_UNCHANGED), e.labels)
    assert len((tmp_path / "t.jsonl").read_text().splitlines()) == 7


def test_dff_serve_stops_on_sigterm_with_streams_open(repository: Path, server_env: ServerEnvironment, tmp_path: Path) -> None:
    endpoints = Endpoints.free()
    command = [sys.executable, "-m", "dff.cli", "serve", str(repository), "--http-port", str(endpoints.http_port),
               "--grpc-port", str(endpoints.grpc_port), "--metrics-port", str(endpoints.metrics_port),
               "--exit-timeout", "2", "--server-env", str(server_env.root), "--log", str(tmp_path / "server.log")]
    serve = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert "serving" in serve.stdout.readline()
        clients = [StreamClient(endpoints.grpc) for _ in range(2)]
        for client in clients:
            client.send(vtest_frames(1, SIZE)[0])  # started, never ended
        began = time.monotonic()
        serve.send_signal(signal.SIGTERM)
        status = serve.wait(timeout=2 + 10 + 10)
        stopped_in = time.monotonic() - began
    finally:
        if serve.poll() is None:
            serve.kill()
    rest = serve.stdout.read()
    assert status == 0 and "stopped (tritonserver exit status" in rest
    assert stopped_in < 2 + 5, f"took {stopped_in:.1f} s to stop with open streams (exit timeout 2 s)"


def test_a_server_restart_mid_stream_restarts_the_sequence(
    repository: Path, server_env: ServerEnvironment, tiny_export: Path, tmp_path: Path
) -> None:
    frames = vtest_frames(6, SIZE, start=200)
    expected = local_results(tiny_export, frames, restart_at=(3,))
    endpoints = Endpoints.free()
    first = TritonServer(  # exit timeout 1 s: Triton waits that long for the open sequence when stopped
        repository, environment=server_env, endpoints=endpoints, exit_timeout_s=1, log_path=tmp_path / "log"
    ).start()
    answers = []
    with StreamClient(endpoints.grpc, reconnect_s=60) as client:
        try:
            answers += [client.send(image) for image in frames[:3]]
        finally:
            first.stop()
        second = TritonServer(repository, environment=server_env, endpoints=endpoints, log_path=tmp_path / "log")
        restarting = threading.Thread(target=second.start)  # the client waits for it on its next frame
        restarting.start()
        try:
            answers += [client.send(image) for image in frames[3:]]
        finally:
            restarting.join()
            second.stop()
        assert client.restarts == 1 and client.frames == len(frames)
    assert [a.restarted for a in answers] == [False] * 3 + [True, False, False]
    assert [a.key for a in answers] == [e.key for e in expected] and answers[3].key
    assert all(np.array_equal(a.labels, e.labels) for a, e in zip(answers, expected))


def test_dff_serve_reports_a_model_that_cannot_load_in_one_line(server_env: ServerEnvironment, tmp_path: Path, capsys) -> None:
    repo = broken_repository(tmp_path / "repo", "raise RuntimeError('cannot load: bad weights')")
    endpoints = Endpoints.free()
    assert main(["serve", str(repo), "--http-port", str(endpoints.http_port), "--grpc-port", str(endpoints.grpc_port),
                 "--metrics-port", str(endpoints.metrics_port), "--server-env", str(server_env.root)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("dff serve: error: tritonserver exited") and "cannot load: bad weights" in error
    assert len(error.splitlines()) == 1


def test_dff_stream_with_several_sources_is_several_streams(server: TritonServer, tmp_path: Path, capsys) -> None:
    import cv2

    clip = small_clip(tmp_path / "clip.avi", 5, size=SIZE)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, image in enumerate(vtest_frames(4, SIZE, start=50)):
        cv2.imwrite(str(folder / f"frame{i}.png"), image)
    assert main(["stream", server.endpoints.grpc, str(clip), str(folder), "--sequence-id", "4242"]) == 0
    printed = capsys.readouterr().out
    assert f"{clip}: streamed 5 frames as sequence 4242" in printed
    assert f"{folder}: streamed 4 frames as sequence 4243" in printed
    assert main(["stream", server.endpoints.grpc, str(clip), str(folder), "--log", str(tmp_path / "t.jsonl")]) == 2
    assert "take one source" in capsys.readouterr().err
