import subprocess
import sys


def test_client_import_pulls_in_no_runtime_or_graph_library() -> None:
    code = (
        "import sys, edgeswarm.client\n"
        "heavy = [m for m in ('onnxruntime', 'onnx', 'zeroconf') if m in sys.modules]\n"
        "print(heavy)\n"
        "assert not heavy, heavy\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip() == "[]"
