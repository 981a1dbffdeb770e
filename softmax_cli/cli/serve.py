"""`softmax serve`: the drawing page and its JSON API on a local web server (softmax_cli.serve)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import threading
from pathlib import Path

import click

from ..errors import SoftmaxError
from .options import checked, model_option
from .render import say


@click.command(short_help="Draw a digit in the browser and watch the probabilities.")
@model_option("The model file to serve.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="The address to listen on. Only this computer can connect to 127.0.0.1; 0.0.0.0 lets others "
              "on the network in.")
@click.option("--port", type=checked("port", int, low=0, high=65535), default=8000, show_default=True,
              help="The port to listen on; 0 takes any free port.")
@click.option("--open", "open_browser", is_flag=True, help="Open the page in the web browser once it answers.")
@click.option("--allow-host", "allowed", multiple=True, metavar="NAME",
              help="Also answer requests addressed to this name (a DNS name others reach this computer by); may be "
              "given more than once. The server answers only to the names it listens for (localhost, --host, and "
              "with --host 0.0.0.0 this computer's own names and addresses), so that a web page elsewhere cannot "
              "read it by rebinding its own name to this address.")
@click.option("--data", type=click.Path(path_type=Path), envvar="SOFTMAX_DATA", show_envvar=True,
              help="The model's training data, for the page's \"Teach the model\" (it is read at the first lesson): "
              "a Keras-format .npz or a folder with one, or the four IDX files. Default: the local data the model "
              "was trained on, where its file remembers it, else the model's data set through keras.datasets.")
def serve(model_path, host, port, open_browser, allowed, data):
    """A local web page to draw a digit and watch the model's probabilities, live.

    The page shows the probabilities as bars, the predicted class and the entropy, the image the model saw,
    and the evidence for a class (each pixel times its weight) beside that class's weight template; drawings
    can be labelled and downloaded as an .npz that `softmax evaluate --data` reads. Beside it, a JSON API:
    POST /api/predict with a PNG or JPEG body answers what `softmax predict --json` prints for it; GET
    /api/model describes the model. The server never writes a file. Ctrl-C stops it.
    """
    from ..store import load_model

    saved = load_model(model_path)
    import uvicorn  # only for this command: --help and predict do not load the server

    from ..serve.app import create_app

    listener = _listen(host, port)
    address, bound_port = listener.getsockname()[:2]
    names = _own_names() if _is_wildcard(address) else []
    # the address to open: a wildcard one (0.0.0.0, ::) is not an address a browser can open
    shown_host = "127.0.0.1" if _is_wildcard(address) else address
    url = f"http://{f'[{shown_host}]' if ':' in shown_host else shown_host}:{bound_port}/"
    accuracy = saved.metadata.get("test_accuracy")
    say(f"softmax serve: {model_path} ({saved.dataset}"
        + (f", test accuracy {accuracy:.2%}" if accuracy is not None else "") + f") at {url}")
    if _is_loopback(address):
        click.echo(f"Only this computer can connect ({address}); pass --host 0.0.0.0 to let others on the network in.")
    else:
        others = [name for name in names if not _is_loopback(name)][:4]
        say(f"Listening on {address}: anyone who can reach this computer on port {bound_port} can use the page"
            + (f", at {', '.join(f'http://{_bracketed(name)}:{bound_port}/' for name in others)}." if others else "."))
    click.echo("Press Ctrl-C to stop.")
    from ..serve.app import LOCAL_HOSTS

    hosts = [*LOCAL_HOSTS, host, address, *names, *allowed]
    app = create_app(saved, model_name=model_path.name, hosts=hosts, **teaching(saved, data))
    # At most 100 connections (more are answered 503 at once), idle ones closed after 5 s, and Ctrl-C closes the
    # ones still open after half a second: a client that holds its upload open cannot keep the server from stopping.
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                                           limit_concurrency=100, timeout_keep_alive=5, timeout_graceful_shutdown=0.5))
    logging.getLogger("uvicorn.error").addFilter(_no_cancelled_uploads)  # (after Config, which sets logging up)
    if open_browser:
        threading.Thread(target=_open_when_started, args=(server, url), daemon=True).start()
    # On Ctrl-C uvicorn stops serving, then raises the signal again: the CLI's main exits 130 with one line.
    server.run(sockets=[listener])


def teaching(saved, data: Path | None) -> dict:
    """Return create_app's teacher for the model saved, whose training data is read at the first lesson from data
    (or the data the model remembers, or its data set downloaded); or, for a model that cannot be taught, the note
    that says why (its teach_note)."""
    from ..config import DATASETS
    from ..teach import Teacher

    if saved.metadata.get("feature_names"):
        return {"teach_note": "the model reads rows of a table, not drawings"}
    if data is None and saved.dataset not in DATASETS and saved.metadata.get("data_path") is None:
        return {"teach_note": f"the model was trained on its own data ({saved.dataset}), which the server needs: "
                              "start it with --data and that data"}

    def load_data():
        from ..data import load_dataset
        from ..evaluation import remembered_data

        if data is not None:
            return load_dataset(data, name=None)
        dataset = remembered_data(saved)
        if dataset is not None:
            return dataset
        if saved.dataset not in DATASETS:
            raise SoftmaxError(f"the data the model was trained on ({saved.metadata['data_path']}) is gone or "
                               "changed: start softmax serve with --data and that data")
        return load_dataset(None, name=saved.dataset)

    return {"teacher": Teacher(saved, load_data)}


def _listen(host: str, port: int) -> socket.socket:
    """Return a socket bound to host:port and listening; a problem is one SoftmaxError line naming --host/--port."""
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                                flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as e:
        raise SoftmaxError(f"cannot listen on --host {host}: {e.strerror or e}") from None
    listener = socket.socket(family, kind, protocol)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        listener.listen(128)
    except OSError as e:
        listener.close()
        raise SoftmaxError(f"cannot listen on {host} port {port}: {e.strerror or e}"
                           + (" (choose another --port, or --port 0 for any free one)" if port else "")) from None
    return listener


def _is_loopback(address: str) -> bool:
    """Return whether address is this computer's own loopback (an IPv4-mapped ::ffff:127.0.0.1 too)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def _no_cancelled_uploads(record: logging.LogRecord) -> bool:
    """Return False for the traceback of an upload cancelled because the server is stopping: uvicorn already says in
    one line that it cancelled the requests still open."""
    return not (record.exc_info and isinstance(record.exc_info[1], asyncio.CancelledError))


def _is_wildcard(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_unspecified
    except ValueError:
        return False


def _bracketed(name: str) -> str:
    return f"[{name}]" if ":" in name else name


def _own_names() -> list[str]:
    """Return this computer's addresses and names by which others on the network may reach it, addresses first."""
    names = []
    for family, far in ((socket.AF_INET, "192.0.2.1"), (socket.AF_INET6, "2001:db8::1")):  # (documentation nets)
        try:  # the address of the interface that would reach the network: connecting UDP sends nothing
            with socket.socket(family, socket.SOCK_DGRAM) as probe:
                probe.connect((far, 9))
                names.append(probe.getsockname()[0])
        except OSError:
            pass
    for name in (socket.gethostname(), socket.getfqdn()):
        try:
            names += [info[4][0] for info in socket.getaddrinfo(name, None)]
        except OSError:
            pass
        names.append(name)
    return list(dict.fromkeys(name.lower() for name in names if name and name.lower() != "localhost"))


def _open_when_started(server, url: str) -> None:
    """Open url in the web browser as soon as the server answers."""
    import time
    import webbrowser

    while not server.started and not server.should_exit:
        time.sleep(0.05)
    if server.started:
        webbrowser.open(url)
