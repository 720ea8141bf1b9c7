"""Bad input: one line naming the problem, exit code 2, no traceback."""

import pytest

from tests.conftest import run_cli

CASES = [
    (["--arrival", "zigzag"], "zigzag"),
    (["--arrival", "poisson", "--rate", "-1"], "--rate"),
    (["--arrival", "gamma"], "--rate"),
    (["--workload", "no-such-workload"], "no-such-workload"),
    (["--workload", "/nonexistent/file.jsonl"], "/nonexistent/file.jsonl"),
    (["--engine", "external"], "endpoint"),
    (["--endpoint", "http://127.0.0.1:9/v1", "--model", "m"], "unreachable"),
    (["--slo", "latency=3"], "SLO"),
    (["--max-tokens", "0"], "max_tokens"),
]


@pytest.mark.parametrize(("args", "needle"), CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_input_is_one_line_exit_2(tmp_path, args, needle):
    proc = run_cli("run", "--out", str(tmp_path), "--limit", "2", *args, timeout=120)
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    assert "Traceback" not in proc.stderr
    assert len(err.splitlines()) == 1, err
    assert needle.lower() in err.lower(), err


def test_summary_of_a_non_run_dir(tmp_path):
    proc = run_cli("summary", str(tmp_path))
    assert proc.returncode == 2 and "not a reasonperf run directory" in proc.stderr


def test_engine_port_taken_is_one_line_exit_2(tmp_path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        proc = run_cli("run", "--engine", "vllm", "--model", str(tmp_path), "--port", str(port),
                       "--limit", "1", "--out", str(tmp_path / "runs"), timeout=120)
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and f"port {port}" in err and "Traceback" not in err
