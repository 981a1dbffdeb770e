"""How fast `softmax serve` answers: start-up until it answers, one POST /api/predict, 200 at once, under attack.

    python bench/serve.py --model model.npz [--data PATH]

Each request sends an MNIST test digit as the page sends a drawing (a 280x280 PNG, white on black) to a real
`softmax serve` child process on a free port, over HTTP on the loopback interface. Targets (issue 12): one
prediction <= 20 ms median, start-up <= 2 s, 200 concurrent predictions all correct and none refused. Under attack
(issue 25: ten clients that send a 16-megapixel PNG and hang up, forty that trickle a body a byte at a time), a
drawing is answered within 1 s, the server grows by less than 200 MB, and Ctrl-C stops it within 1 s. The last
line printed is the figures as JSON.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from mnist import data_path
from softmax_cli.data import load_dataset
from softmax_cli.predict import predict_image
from softmax_cli.store import load_model

STARTS = 3          # start-ups measured; the median is reported
SEQUENTIAL = 200    # requests one after the other, for the median time of one
CONCURRENT = 200    # requests at once
CONNECTIONS = 64    # over this many connections
HEAVY, TRICKLING = 10, 40  # the attack's clients


def rss_mb(pid: int) -> float:
    """Return the resident memory of process pid, in MB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def under_attack(process: subprocess.Popen, url: str, body: bytes) -> dict:
    """Return a drawing's latency and the server's growth while HEAVY clients send a 16-megapixel PNG and hang
    up and TRICKLING ones send a body a byte every half second, and how long Ctrl-C then takes to stop it."""
    import socket
    import threading

    page = np.full((4000, 4000), 255, np.uint8)
    page[1000:3000, 1900:2100] = 0
    heavy = io.BytesIO()
    Image.fromarray(page).save(heavy, "PNG", optimize=True)
    host, port = url.split("//")[1].strip("/").rsplit(":", 1)
    request = (f"POST /api/predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: image/png\r\n"
               "Content-Length: {}\r\n\r\n")
    before = rss_mb(process.pid)
    stop_trickling = threading.Event()

    def trickle():
        with socket.create_connection((host, int(port))) as client:
            client.sendall(request.format(5_000_000).encode())
            while not stop_trickling.wait(0.5):
                client.sendall(b"x")

    tricklers = [threading.Thread(target=trickle, daemon=True) for _ in range(TRICKLING)]
    for thread in tricklers:
        thread.start()
    for _ in range(HEAVY):
        with socket.create_connection((host, int(port))) as client:
            client.sendall(request.format(len(heavy.getvalue())).encode() + heavy.getvalue())
    times = []
    with httpx.Client(base_url=url, trust_env=False, timeout=60) as client:
        for _ in range(20):
            began = time.perf_counter()
            answer = client.post("api/predict", content=body, headers={"Content-Type": "image/png"})
            times.append(time.perf_counter() - began)
            assert answer.status_code == 200, answer.text
    grown = rss_mb(process.pid) - before
    began = time.perf_counter()
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=30)
    stopped = time.perf_counter() - began
    stop_trickling.set()
    return {"attack_predict_ms_median": round(1000 * statistics.median(times), 1),
            "attack_predict_ms_max": round(1000 * max(times), 1), "attack_rss_growth_mb": round(grown, 1),
            "attack_ctrl_c_seconds": round(stopped, 2)}


def drawing(digit: np.ndarray) -> bytes:
    """Return an MNIST digit as the page sends a drawing: a 280x280 PNG, white strokes on black."""
    buffer = io.BytesIO()
    Image.fromarray(digit).resize((280, 280), Image.Resampling.BILINEAR).save(buffer, format="PNG")
    return buffer.getvalue()


def start(model: Path) -> tuple[subprocess.Popen, str, float]:
    """Start `softmax serve` on a free port; return it, its address and the seconds until GET /api/model answered."""
    began = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "softmax_cli", "serve", "--model", str(model), "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    if " at http://" not in line:
        process.kill()
        raise SystemExit(f"softmax serve did not start: {line.strip() or process.stderr.read().strip()}")
    url = line.rsplit(" at ", 1)[1].strip()
    while True:
        try:
            if httpx.get(url + "api/model", trust_env=False).status_code == 200:
                return process, url, time.perf_counter() - began
        except httpx.TransportError:
            time.sleep(0.005)


def stop(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=30)
    return process.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("model.npz"))
    parser.add_argument("--data", type=Path, default=data_path(), help="MNIST [default: $SOFTMAX_DATA, else the "
                        "shared copy]")
    args = parser.parse_args()
    saved = load_model(args.model)
    digits = load_dataset(args.data, name="mnist").x_test[:CONCURRENT]
    bodies = [drawing(digit) for digit in digits]
    expected = [predict_image(saved, body).probabilities.tolist() for body in bodies]
    headers = {"Content-Type": "image/png"}

    startups, exit_codes = [], []
    for _ in range(STARTS):
        process, url, seconds = start(args.model)
        startups.append(seconds)
        exit_codes.append(stop(process))

    process, url, _ = start(args.model)
    try:
        with httpx.Client(base_url=url, trust_env=False) as client:
            client.post("api/predict", content=bodies[0], headers=headers)  # the first request warms the imports
            times = []
            for i in range(SEQUENTIAL):
                began = time.perf_counter()
                answer = client.post("api/predict", content=bodies[i % len(bodies)], headers=headers)
                times.append(time.perf_counter() - began)
                assert answer.status_code == 200, answer.text
        in_process = []
        for body in bodies[:SEQUENTIAL]:
            began = time.perf_counter()
            predict_image(saved, body)
            in_process.append(time.perf_counter() - began)

        # (200 requests at once over 64 connections: the server holds at most 100 open, and answers more with 503)
        limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
        with httpx.Client(base_url=url, trust_env=False, limits=limits, timeout=60) as client:
            def ask(i):
                answer = client.post("api/predict", content=bodies[i], headers=headers)
                return answer.status_code, answer.json().get("probabilities")

            began = time.perf_counter()
            with ThreadPoolExecutor(max_workers=CONCURRENT) as pool:
                answers = list(pool.map(ask, range(CONCURRENT)))
            concurrent_seconds = time.perf_counter() - began
    finally:
        exit_codes.append(stop(process))
    process, url, _ = start(args.model)
    attack = under_attack(process, url, bodies[0])

    figures = {
        "startup_seconds_median": round(statistics.median(startups), 3),
        "predict_ms_median": round(1000 * statistics.median(times), 2),
        "predict_ms_p95": round(1000 * float(np.percentile(times, 95)), 2),
        "predict_image_ms_median_in_process": round(1000 * statistics.median(in_process), 2),
        "concurrent": CONCURRENT,
        "concurrent_ok": sum(status == 200 for status, _ in answers),
        "concurrent_correct": sum(p == expected[i] for i, (_, p) in enumerate(answers)),
        "concurrent_seconds": round(concurrent_seconds, 3),
        "ctrl_c_exit_codes": sorted(set(exit_codes)),
        **attack,
        "load_average": [round(load, 2) for load in os.getloadavg()],
        "cpus": os.cpu_count(),
    }
    print(f"start-up until it answers: {figures['startup_seconds_median']:.2f} s (median of {STARTS}; target <= 2 s)")
    print(f"one POST /api/predict: {figures['predict_ms_median']:.1f} ms median, {figures['predict_ms_p95']:.1f} ms "
          f"p95 over {SEQUENTIAL} (target <= 20 ms); predict_image alone "
          f"{figures['predict_image_ms_median_in_process']:.1f} ms")
    print(f"{CONCURRENT} at once: {figures['concurrent_ok']} answered, {figures['concurrent_correct']} correct, in "
          f"{figures['concurrent_seconds']:.2f} s")
    print(f"under attack ({HEAVY} heavy uploads abandoned, {TRICKLING} trickling): a drawing in "
          f"{attack['attack_predict_ms_median']:.1f} ms median, {attack['attack_predict_ms_max']:.1f} ms at most "
          f"(target <= 1 s); the server grew {attack['attack_rss_growth_mb']:.0f} MB (target < 200); Ctrl-C took "
          f"{attack['attack_ctrl_c_seconds']:.2f} s (target <= 1 s)")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
